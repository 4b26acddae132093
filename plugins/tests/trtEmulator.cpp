/*
 * The native half of the tests' emulated TensorRT (tests/trt_emulator): built as a stand-in
 * libnvinfer.so.<major> that exports what a plugin library may look up (getPluginRegistry,
 * getLogger) and a C ABI that the emulated Python bindings drive through ctypes:
 *   - the plugin registry (trtHost.h's HostRegistry, loadLibrary through getCreators), counting
 *     registry calls made from inside loadLibrary (TensorRT holds the registry's lock there);
 *   - a plugin's creation from fields, its build phase (getOutputDataTypes, getOutputShapes with an
 *     expression builder, supportsFormatCombination, configurePlugin, getWorkspaceSize) with the
 *     header contracts checked, its serialized fields, and its runtime phase (attachToContext,
 *     onShapeChange, enqueue with a guarded workspace).
 * Test code only: it plays TensorRT's side of the plugin interfaces, it is not TensorRT.
 */
#include "trtHost.h"

#include <NvInferVersion.h>

#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <vector>

using namespace nvinfer1;

namespace
{
saint_host::HostLogger& emuLogger()
{
    static saint_host::HostLogger logger;
    return logger;
}

saint_host::HostRegistry& emuRegistry()
{
    static saint_host::HostRegistry registry(&emuLogger());
    return registry;
}

thread_local std::string tResult; // the last JSON answer handed to Python

char const* answer(std::string s)
{
    tResult = std::move(s);
    return tResult.c_str();
}

std::string quoted(std::string const& s)
{
    std::string out = "\"";
    for (char c : s)
    {
        if (c == '"' || c == '\\')
            out += '\\';
        if (static_cast<unsigned char>(c) < 0x20)
            out += ' ';
        else
            out += c;
    }
    return out + "\"";
}

char const* error(std::string const& message)
{
    std::string last = emuLogger().lastError();
    return answer("{\"ok\": false, \"error\": " + quoted(message + (last.empty() ? "" : " (plugin log: " + last + ")")) + "}");
}

std::string joined(std::string const& head, std::vector<std::string> const& items)
{
    std::string out = head;
    for (auto const& item : items)
        out += "; " + item;
    return out;
}

std::string exprJson(saint_host::DimExpr const* e)
{
    using K = saint_host::DimExpr::Kind;
    static char const* const ops[] = {"sum", "prod", "max", "min", "sub", "eq", "less", "floordiv", "ceildiv"};
    if (e == nullptr)
        return "null";
    switch (e->kind)
    {
    case K::kCONSTANT: return std::to_string(e->value);
    case K::kSYMBOL: return quoted(e->symbol);
    case K::kSIZE_TENSOR: return "{\"size\": " + std::to_string(e->value) + "}";
    case K::kOPERATION:
        return std::string("[\"") + ops[static_cast<int32_t>(e->op)] + "\", " + exprJson(e->a) + ", " + exprJson(e->b) + "]";
    }
    return "null";
}

//! Does ``e`` depend on a size tensor: a declared one, or an input dim flagged as derived from one.
bool dependsOnSizeTensor(saint_host::DimExpr const* e, std::vector<std::string> const& sizeSymbols)
{
    using K = saint_host::DimExpr::Kind;
    if (e == nullptr)
        return false;
    switch (e->kind)
    {
    case K::kCONSTANT: return false;
    case K::kSYMBOL:
        for (auto const& s : sizeSymbols)
            if (s == e->symbol)
                return true;
        return false;
    case K::kSIZE_TENSOR: return true;
    case K::kOPERATION: return dependsOnSizeTensor(e->a, sizeSymbols) || dependsOnSizeTensor(e->b, sizeSymbols);
    }
    return false;
}

IPluginCreatorV3One* asV3Creator(void* creator)
{
    auto* c = static_cast<IPluginCreatorInterface*>(creator);
    if (c == nullptr)
        return nullptr;
    InterfaceInfo const info = c->getInterfaceInfo();
    return info.kind != nullptr && std::strcmp(info.kind, "PLUGIN CREATOR_V3ONE") == 0 ? static_cast<IPluginCreatorV3One*>(c)
                                                                                     : nullptr;
}

template <typename T>
T* capability(void* plugin, PluginCapabilityType type)
{
    auto* p = static_cast<IPluginV3*>(plugin);
    return p != nullptr ? static_cast<T*>(p->getCapabilityInterface(type)) : nullptr;
}

class NoResources : public IPluginResourceContext
{
public:
    IGpuAllocator* getGpuAllocator() const noexcept override { return nullptr; }
    IErrorRecorder* getErrorRecorder() const noexcept override { return nullptr; }
};

Dims dimsOf(int32_t rank, int64_t const* d)
{
    Dims dims{};
    dims.nbDims = rank;
    for (int32_t i = 0; i < rank && i < Dims::MAX_DIMS; ++i)
        dims.d[i] = d[i];
    return dims;
}

constexpr size_t kGuardBytes = 4096;
constexpr unsigned char kGuard = 0xA5;
} // namespace

#define EMU_PUBLIC extern "C" __attribute__((visibility("default")))

EMU_PUBLIC IPluginRegistry* getPluginRegistry() noexcept
{
    return &emuRegistry();
}

EMU_PUBLIC ILogger* getLogger() noexcept
{
    return &emuLogger();
}

#ifndef SAINT_TENSORRT_MAJOR
#define SAINT_TENSORRT_MAJOR NV_TENSORRT_MAJOR
#endif

EMU_PUBLIC int32_t emu_tensorrt_major()
{
    return SAINT_TENSORRT_MAJOR;
}

EMU_PUBLIC int32_t emu_log_count()
{
    return static_cast<int32_t>(emuLogger().all.size());
}

EMU_PUBLIC char const* emu_log_message(int32_t i)
{
    auto const& all = emuLogger().all;
    return i >= 0 && i < static_cast<int32_t>(all.size()) ? all[i].c_str() : "";
}

EMU_PUBLIC int32_t emu_registry_reentrant_calls()
{
    return emuRegistry().reentrantCalls;
}

EMU_PUBLIC int32_t emu_registry_duplicates()
{
    return emuRegistry().duplicates;
}

EMU_PUBLIC void* emu_load_library(char const* path)
{
    return emuRegistry().loadLibrary(path);
}

EMU_PUBLIC void emu_deregister_library(void* handle)
{
    emuRegistry().deregisterLibrary(handle);
}

EMU_PUBLIC int32_t emu_creator_count()
{
    int32_t n = 0;
    emuRegistry().getAllCreators(&n);
    return n;
}

EMU_PUBLIC void* emu_creator_at(int32_t i)
{
    int32_t n = 0;
    IPluginCreatorInterface* const* all = emuRegistry().getAllCreators(&n);
    return i >= 0 && i < n ? all[i] : nullptr;
}

EMU_PUBLIC void* emu_get_creator(char const* name, char const* version, char const* ns)
{
    return emuRegistry().getCreator(name, version, ns);
}

EMU_PUBLIC int32_t emu_deregister_creator(void* creator)
{
    return creator != nullptr && emuRegistry().deregisterCreator(*static_cast<IPluginCreatorInterface*>(creator));
}

//! {"name", "version", "namespace", "fields": [[name, type, length], ...]} of a V3 creator.
EMU_PUBLIC char const* emu_creator_info(void* creator)
{
    IPluginCreatorV3One* c = asV3Creator(creator);
    if (c == nullptr)
        return error("not an IPluginCreatorV3One");
    std::ostringstream os;
    os << "{\"ok\": true, \"name\": " << quoted(c->getPluginName()) << ", \"version\": " << quoted(c->getPluginVersion())
       << ", \"namespace\": " << quoted(c->getPluginNamespace() ? c->getPluginNamespace() : "") << ", \"fields\": [";
    PluginFieldCollection const* fc = c->getFieldNames();
    for (int32_t i = 0; fc != nullptr && i < fc->nbFields; ++i)
        os << (i ? ", " : "") << "[" << quoted(fc->fields[i].name) << ", " << static_cast<int32_t>(fc->fields[i].type) << ", "
           << fc->fields[i].length << "]";
    os << "]}";
    return answer(os.str());
}

EMU_PUBLIC void* emu_create_plugin(void* creator, char const* name, int32_t nbFields, char const* const* names,
    void const* const* data, int32_t const* types, int32_t const* lengths, int32_t phase)
{
    IPluginCreatorV3One* c = asV3Creator(creator);
    if (c == nullptr)
        return nullptr;
    std::vector<PluginField> fields;
    for (int32_t i = 0; i < nbFields; ++i)
        fields.emplace_back(names[i], data[i], static_cast<PluginFieldType>(types[i]), lengths[i]);
    PluginFieldCollection fc{};
    fc.nbFields = nbFields;
    fc.fields = fields.data();
    return c->createPlugin(name, &fc, static_cast<TensorRTPhase>(phase));
}

EMU_PUBLIC void emu_destroy_plugin(void* plugin)
{
    delete static_cast<IPluginV3*>(plugin);
}

//! {"name", "version", "namespace", "nb_outputs"} of a plugin.
EMU_PUBLIC char const* emu_plugin_info(void* plugin)
{
    auto* core = capability<IPluginV3OneCore>(plugin, PluginCapabilityType::kCORE);
    auto* build = capability<IPluginV3OneBuild>(plugin, PluginCapabilityType::kBUILD);
    if (core == nullptr)
        return error("the plugin has no core capability");
    std::ostringstream os;
    os << "{\"ok\": true, \"name\": " << quoted(core->getPluginName()) << ", \"version\": " << quoted(core->getPluginVersion())
       << ", \"namespace\": " << quoted(core->getPluginNamespace()) << ", \"nb_outputs\": "
       << (build != nullptr ? build->getNbOutputs() : -1) << "}";
    return answer(os.str());
}

//! getFieldsToSerialize as [[name, type, length, hex bytes], ...]: what TensorRT writes into the plan.
EMU_PUBLIC char const* emu_plugin_fields(void* plugin)
{
    auto* runtime = capability<IPluginV3OneRuntime>(plugin, PluginCapabilityType::kRUNTIME);
    if (runtime == nullptr)
        return error("the plugin has no runtime capability");
    PluginFieldCollection const* fc = runtime->getFieldsToSerialize();
    if (fc == nullptr)
        return error("getFieldsToSerialize returned nullptr");
    static size_t const sizes[] = {2, 4, 8, 1, 2, 4, 1, sizeof(Dims64), 0, 2, 8, 1, 1, 1};
    std::ostringstream os;
    os << "{\"ok\": true, \"fields\": [";
    for (int32_t i = 0; i < fc->nbFields; ++i)
    {
        PluginField const& f = fc->fields[i];
        int32_t const t = static_cast<int32_t>(f.type);
        size_t const bytes = (t >= 0 && t < 14 ? sizes[t] : 0) * static_cast<size_t>(f.length);
        std::string hex;
        char buf[3];
        for (size_t b = 0; b < bytes && f.data != nullptr; ++b)
        {
            std::snprintf(buf, sizeof(buf), "%02x", static_cast<unsigned char const*>(f.data)[b]);
            hex += buf;
        }
        os << (i ? ", " : "") << "[" << quoted(f.name) << ", " << t << ", " << f.length << ", " << quoted(hex) << "]";
    }
    os << "]}";
    return answer(os.str());
}

/*
 * The build phase, as the builder calls it. Input dims: >= 0 constant, < 0 symbol -(dim + 1) of
 * ``symNames`` (min/opt/max values given; sizeSym[s] = 1 when the symbol is a size tensor of an
 * upstream plugin). Answers {"ok", "out_types", "outputs": [[rank, [expr...]]...], "size_tensors":
 * [[index, opt, upper]...], "workspace", "violations": [...]} where a violation names the header
 * statement broken.
 */
EMU_PUBLIC char const* emu_plugin_build(void* plugin, int32_t nbIn, int32_t const* inTypes, int32_t const* inRanks,
    int64_t const* inDims, int32_t nbSym, char const* const* symNames, int64_t const* symMin, int64_t const* symOpt,
    int64_t const* symMax, int32_t const* sizeSym)
{
    auto* build = capability<IPluginV3OneBuild>(plugin, PluginCapabilityType::kBUILD);
    if (build == nullptr)
        return error("the plugin has no build capability");
    std::vector<std::string> violations;
    std::vector<std::string> sizeSymbols;
    for (int32_t s = 0; s < nbSym; ++s)
        if (sizeSym[s])
            sizeSymbols.emplace_back(symNames[s]);
    int32_t const nbOut = build->getNbOutputs();
    if (nbOut < 1 || nbOut > 16)
        return error("getNbOutputs returned " + std::to_string(nbOut));

    std::vector<DataType> in(nbIn), out(nbOut, DataType::kFLOAT);
    for (int32_t i = 0; i < nbIn; ++i)
    {
        in[i] = static_cast<DataType>(inTypes[i]);
        if (in[i] == DataType::kBOOL || in[i] == DataType::kUINT8)
            violations.push_back("input " + std::to_string(i) + " is kBOOL/kUINT8: NvInferRuntimePlugin.h:76 (10.14), PluginTensorDesc::type "
                                 "'DataType:kBOOL and DataType::kUINT8 are not supported'");
    }
    if (build->getOutputDataTypes(out.data(), nbOut, in.data(), nbIn) != 0)
        return error(joined("getOutputDataTypes failed", violations));
    for (int32_t i = 0; i < nbOut; ++i)
        if (out[i] == DataType::kBOOL || out[i] == DataType::kUINT8)
            violations.push_back("output " + std::to_string(i) + " is kBOOL/kUINT8: NvInferRuntime.h, "
                                 "IPluginV3OneBuild::getOutputDataTypes (NvInferRuntime.h:935 in 10.14) 'DataType:kBOOL and DataType::kUINT8 are not supported'");
    if (!violations.empty()) // what TensorRT would refuse or misread: reported before the plugin sees the types
        return error(joined("plugin I/O types", violations));

    saint_host::ExprBuilder eb;
    std::vector<DimsExprs> ins(nbIn), outs(nbOut);
    saint_host::Bindings lo, opt, hi;
    for (int32_t s = 0; s < nbSym; ++s)
    {
        lo.symbols[symNames[s]] = symMin[s];
        opt.symbols[symNames[s]] = symOpt[s];
        hi.symbols[symNames[s]] = symMax[s];
    }
    for (int32_t i = 0; i < nbIn; ++i)
    {
        ins[i].nbDims = inRanks[i];
        for (int32_t d = 0; d < inRanks[i]; ++d)
        {
            int64_t const v = inDims[i * Dims::MAX_DIMS + d];
            if (v < 0 && -(v + 1) >= nbSym)
                return error("bad symbol in input dims");
            ins[i].d[d] = v >= 0 ? eb.constant(v) : eb.symbol(symNames[-(v + 1)]);
        }
    }
    if (build->getOutputShapes(ins.data(), nbIn, nullptr, 0, outs.data(), nbOut, eb) != 0)
        return error(joined("getOutputShapes failed", violations));
    if (eb.badCalls != 0)
        violations.push_back("the expression builder got invalid calls (a second declareSizeTensor for one output, or a "
                             "constant division by zero)");
    std::ostringstream sizes;
    bool firstSize = true;
    for (auto const& [index, expr] : eb.declared)
    {
        if (index < 0 || index >= nbOut)
        {
            violations.push_back("declareSizeTensor names output " + std::to_string(index) + ", which does not exist");
            continue;
        }
        if (outs[index].nbDims != 0)
            violations.push_back("size tensor output " + std::to_string(index) + " is not 0-D: NvInferRuntime.h:951 (10.14), "
                                 "IPluginV3OneBuild::getOutputShapes 'Any size tensor outputs must be declared to be 0D'");
        if (out[index] != DataType::kINT32)
            violations.push_back("size tensor output " + std::to_string(index) + " is not kINT32: NvInferRuntime.h:932 (10.14), "
                                 "getOutputDataTypes 'The data type for any size tensor outputs must be DataType::kINT32'");
        if (dependsOnSizeTensor(expr->a, sizeSymbols))
            violations.push_back("size tensor output " + std::to_string(index) + ": opt " + expr->a->str()
                + " depends on a size tensor: NvInferRuntime.h:331 (10.14), IExprBuilder::declareSizeTensor 'opt ... Must not depend on a size tensor'");
        int64_t o = 0, u = 0;
        if (!expr->a->evaluate(hi, o) || !expr->b->evaluate(hi, u) || o < 0 || u < o)
            violations.push_back("size tensor output " + std::to_string(index) + ": opt " + expr->a->str() + " / upper "
                + expr->b->str() + " do not evaluate to 0 <= opt <= upper");
        lo.sizeTensors[index] = 0;
        opt.sizeTensors[index] = o;
        hi.sizeTensors[index] = u;
        sizes << (firstSize ? "" : ", ") << "[" << index << ", " << exprJson(expr->a) << ", " << exprJson(expr->b) << "]";
        firstSize = false;
    }
    if (!violations.empty())
        return error(joined("plugin contract", violations));
    for (int32_t i = 0; i < nbOut; ++i)
        for (int32_t d = 0; d < outs[i].nbDims; ++d)
            if (outs[i].d[d] == nullptr)
                return error("getOutputShapes left output " + std::to_string(i) + " dim " + std::to_string(d) + " unset");

    // descriptors over the profile: dims -1 where not constant, min/opt/max evaluated
    auto describe = [&](DimsExprs const& e, DataType type, DynamicPluginTensorDesc& desc) -> bool {
        desc = DynamicPluginTensorDesc{};
        desc.desc.type = type;
        desc.desc.format = TensorFormat::kLINEAR;
        desc.desc.scale = 1.f;
        desc.desc.dims.nbDims = desc.min.nbDims = desc.opt.nbDims = desc.max.nbDims = e.nbDims;
        for (int32_t d = 0; d < e.nbDims; ++d)
        {
            auto const* x = static_cast<saint_host::DimExpr const*>(e.d[d]);
            desc.desc.dims.d[d] = x->isConstant() ? x->getConstantValue() : -1;
            if (!x->evaluate(lo, desc.min.d[d]) || !x->evaluate(opt, desc.opt.d[d]) || !x->evaluate(hi, desc.max.d[d]))
                return false;
        }
        return true;
    };
    std::vector<DynamicPluginTensorDesc> inOut(nbIn + nbOut);
    for (int32_t i = 0; i < nbIn; ++i)
        if (!describe(ins[i], in[i], inOut[i]))
            return error("input " + std::to_string(i) + " dims do not evaluate");
    for (int32_t i = 0; i < nbOut; ++i)
        if (!describe(outs[i], out[i], inOut[nbIn + i]))
            return error("output " + std::to_string(i) + " dims do not evaluate over the profile");
    for (int32_t pos = 0; pos < nbIn + nbOut; ++pos)
        if (!build->supportsFormatCombination(pos, inOut.data(), nbIn, nbOut))
            return error("supportsFormatCombination refused position " + std::to_string(pos) + " (type "
                + std::to_string(static_cast<int32_t>(inOut[pos].desc.type)) + ", kLINEAR)");
    if (build->configurePlugin(inOut.data(), nbIn, inOut.data() + nbIn, nbOut) != 0)
        return error("configurePlugin failed");
    size_t const workspace = build->getWorkspaceSize(inOut.data(), nbIn, inOut.data() + nbIn, nbOut);

    std::ostringstream os;
    os << "{\"ok\": true, \"out_types\": [";
    for (int32_t i = 0; i < nbOut; ++i)
        os << (i ? ", " : "") << static_cast<int32_t>(out[i]);
    os << "], \"outputs\": [";
    for (int32_t i = 0; i < nbOut; ++i)
    {
        os << (i ? ", " : "") << "[" << outs[i].nbDims << ", [";
        for (int32_t d = 0; d < outs[i].nbDims; ++d)
            os << (d ? ", " : "") << exprJson(static_cast<saint_host::DimExpr const*>(outs[i].d[d]));
        os << "]]";
    }
    os << "], \"size_tensors\": [" << sizes.str() << "], \"workspace\": " << workspace << ", \"violations\": [";
    for (size_t i = 0; i < violations.size(); ++i)
        os << (i ? ", " : "") << quoted(violations[i]);
    os << "]}";
    return answer(os.str());
}

//! IPluginV3OneRuntime::attachToContext: the per-context clone TensorRT runs (nullptr on failure).
EMU_PUBLIC void* emu_attach(void* plugin)
{
    static NoResources resources;
    auto* runtime = capability<IPluginV3OneRuntime>(plugin, PluginCapabilityType::kRUNTIME);
    return runtime != nullptr ? runtime->attachToContext(&resources) : nullptr;
}

/*
 * onShapeChange then enqueue on the null stream. ``types``/``ranks``/``dims`` (MAX_DIMS per tensor)
 * describe the nbIn inputs then the nbOut outputs (outputs at their allocated, upper-bound dims).
 * ``workspace`` holds ``workspaceBytes`` plus a guard band that must stay untouched. Answers
 * {"ok": true} or {"ok": false, "error"}.
 */
EMU_PUBLIC char const* emu_plugin_enqueue(void* plugin, int32_t nbIn, int32_t nbOut, int32_t const* types,
    int32_t const* ranks, int64_t const* dims, void const* const* inputs, void* const* outputs, void* workspace,
    size_t workspaceBytes)
{
    auto* runtime = capability<IPluginV3OneRuntime>(plugin, PluginCapabilityType::kRUNTIME);
    if (runtime == nullptr)
        return error("the plugin has no runtime capability");
    std::vector<PluginTensorDesc> desc(nbIn + nbOut);
    for (int32_t i = 0; i < nbIn + nbOut; ++i)
    {
        desc[i].dims = dimsOf(ranks[i], dims + i * Dims::MAX_DIMS);
        desc[i].type = static_cast<DataType>(types[i]);
        desc[i].format = TensorFormat::kLINEAR;
        desc[i].scale = 1.f;
    }
    if (runtime->onShapeChange(desc.data(), nbIn, desc.data() + nbIn, nbOut) != 0)
        return error("onShapeChange failed");
    auto* guard = static_cast<unsigned char*>(workspace) + workspaceBytes;
    std::memset(guard, kGuard, kGuardBytes);
    if (runtime->enqueue(desc.data(), desc.data() + nbIn, inputs, outputs, workspaceBytes ? workspace : nullptr, nullptr) != 0)
        return error("enqueue failed");
    for (size_t b = 0; b < kGuardBytes; ++b)
        if (guard[b] != kGuard)
            return error("enqueue wrote past the " + std::to_string(workspaceBytes)
                + " workspace bytes that getWorkspaceSize asked for");
    return answer("{\"ok\": true}");
}

EMU_PUBLIC size_t emu_workspace_guard_bytes()
{
    return kGuardBytes;
}
