/*
 * TensorRT's walk through the SaintTokenDrop plugin, played on the CPU (see hostWalk.h).
 */
#include "hostWalk.h"
#include "hostParts.h"

#include "../saint_token_drop/saintTokenDropPlugin.h"

#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>

using namespace nvinfer1;

namespace saint_host
{
namespace
{

struct Attrs
{
    float threshold{0.75f};
    int32_t k{5};
    float gamma{10.f};
    int32_t protectedTokens{1};
    int32_t fixedR{-1};
    int32_t maxTokens{0}; //!< 0: the field is not given
    std::vector<PluginField> fields()
    {
        std::vector<PluginField> f = {PluginField(saint::kFIELD_THRESHOLD, &threshold, PluginFieldType::kFLOAT32, 1),
            PluginField(saint::kFIELD_K, &k, PluginFieldType::kINT32, 1),
            PluginField(saint::kFIELD_GAMMA, &gamma, PluginFieldType::kFLOAT32, 1),
            PluginField(saint::kFIELD_PROTECTED, &protectedTokens, PluginFieldType::kINT32, 1),
            PluginField(saint::kFIELD_FIXED_R, &fixedR, PluginFieldType::kINT32, 1)};
        if (maxTokens > 0)
            f.emplace_back(saint::kFIELD_MAX_TOKENS, &maxTokens, PluginFieldType::kINT32, 1);
        return f;
    }
};

IPluginV3* create(IPluginCreatorV3One& creator, Attrs& a, TensorRTPhase phase)
{
    std::vector<PluginField> f = a.fields();
    PluginFieldCollection fc{static_cast<int32_t>(f.size()), f.data()};
    return creator.createPlugin("saint_drop_block0", &fc, phase);
}

//! The rule's output token count for a fixed r (saint_export.rule.saint_drop).
int64_t fixedCount(int64_t n, int64_t p, int64_t fixedR)
{
    int64_t const free = n - p;
    if (free < 2)
        return n;
    int64_t const na = (free + 1) / 2;
    return n - (fixedR < na ? fixedR : na);
}

//! Shapes of one network: symbolic or constant B and N, constant C and D.
struct Net
{
    ExprBuilder eb;
    DimsExprs in[2]{};
    DimsExprs out[3]{};
    DataType outTypes[3]{};
    int32_t nbOut{0};
    Net(int64_t n, bool symbolicN, int64_t c, int64_t d)
    {
        IDimensionExpr const* b = eb.symbol("B");
        IDimensionExpr const* nn = symbolicN ? static_cast<IDimensionExpr const*>(eb.symbol("N")) : eb.constant(n);
        in[0].nbDims = in[1].nbDims = 3;
        in[0].d[0] = in[1].d[0] = b;
        in[0].d[1] = in[1].d[1] = nn;
        in[0].d[2] = eb.constant(c);
        in[1].d[2] = eb.constant(d);
    }
    //! getOutputDataTypes then getOutputShapes, as the builder calls them.
    int32_t shapes(IPluginV3OneBuild& build, DataType type)
    {
        nbOut = build.getNbOutputs();
        DataType const inTypes[2] = {type, type};
        if (build.getOutputDataTypes(outTypes, nbOut, inTypes, 2) != 0)
            return -1;
        return build.getOutputShapes(in, 2, nullptr, 0, out, nbOut, eb);
    }
    DimExpr const& dim(int32_t o, int32_t i) const { return static_cast<DimExpr const&>(*out[o].d[i]); }
};

//! supportsFormatCombination as the builder probes it: every position, the chosen type first.
bool formatsAccepted(IPluginV3OneBuild& build, std::vector<DynamicPluginTensorDesc>& io, int32_t nbOut)
{
    bool ok = true;
    for (int32_t pos = 0; pos < 2 + nbOut; ++pos)
        ok = ok && build.supportsFormatCombination(pos, io.data(), 2, nbOut);
    return ok;
}

std::vector<DynamicPluginTensorDesc> profile(DataType t, int64_t bMax, int64_t n, int64_t c, int64_t d, int32_t nbOut)
{
    std::vector<DynamicPluginTensorDesc> io = {dyn(t, {1, n, c}, {bMax, n, c}), dyn(t, {1, n, d}, {bMax, n, d}),
        dyn(t, {1, 0, c}, {bMax, n, c}), dyn(DataType::kINT64, {1, 0}, {bMax, n})};
    if (nbOut == 3)
        io.push_back(dyn(DataType::kINT32, {}, {}));
    return io;
}

void checkVoteShapes(IPluginCreatorV3One& creator, CheckFn check)
{
    Attrs a;
    {
        // N not a constant (after an earlier vote it is that drop's size tensor) and no bound: refused
        Caps unbounded = caps(create(creator, a, TensorRTPhase::kBUILD));
        Net net(197, true, 192, 64);
        check(unbounded.build && net.shapes(*unbounded.build, DataType::kFLOAT) != 0,
            "vote: a dynamic N without max_tokens is refused (opt must not depend on a size tensor)");
    }
    a.maxTokens = 197;
    Caps p = caps(create(creator, a, TensorRTPhase::kBUILD));
    Net net(197, true, 192, 64);
    check(p.build && net.shapes(*p.build, DataType::kFLOAT) == 0, "vote: getOutputShapes");
    check(net.nbOut == 3 && net.outTypes[1] == DataType::kINT64 && net.outTypes[2] == DataType::kINT32, "vote: 3 outputs, int64 index, int32 count");
    check(net.eb.declared.count(2) == 1 && net.out[2].nbDims == 0, "vote: output 2 is a declared scalar size tensor");
    Bindings bind{{{"B", 4}, {"N", 197}}, {}};
    int64_t upper = 0;
    check(net.eb.declared.count(2) && net.eb.declared[2]->b->evaluate(bind, upper) && upper == 197, "vote: size tensor upper bound N");
    check(net.eb.declared.count(2) && net.eb.declared[2]->a->isConstant() && net.eb.declared[2]->b->isConstant(),
        "vote: the size tensor's opt and upper are constants (max_tokens)");
    check(net.dim(0, 1).isSizeTensor() && &net.dim(0, 1) == &net.dim(1, 1), "vote: M of tokens_out and kept_index is the size tensor");
    check(net.dim(0, 0).symbol == "B" && net.dim(0, 2).isConstant() && net.dim(0, 2).getConstantValue() == 192, "vote: [B, M, C]");
    check(net.eb.badCalls == 0, "vote: expression builder used correctly");
}

void checkFixedShapes(IPluginCreatorV3One& creator, CheckFn check)
{
    bool constOk = true;
    bool symOk = true;
    for (int64_t n : {1, 2, 3, 4, 5, 50, 197, 198, 257})
        for (int32_t pr : {0, 1, 2, 5})
            for (int32_t fr : {0, 1, 8, 100, 8192})
            {
                Attrs a;
                a.protectedTokens = pr;
                a.fixedR = fr;
                Caps p = caps(create(creator, a, TensorRTPhase::kBUILD));
                Net fixedN(n, false, 192, 64);
                constOk = constOk && p.build && fixedN.shapes(*p.build, DataType::kHALF) == 0 && fixedN.nbOut == 2
                    && fixedN.eb.declared.empty() && fixedN.dim(0, 1).isConstant() && fixedN.dim(1, 1).isConstant()
                    && fixedN.dim(0, 1).getConstantValue() == fixedCount(n, pr, fr);
                Net symN(n, true, 192, 64);
                int64_t m = -1;
                symOk = symOk && symN.shapes(*p.build, DataType::kHALF) == 0 && symN.eb.declared.empty()
                    && !symN.dim(0, 1).isConstant() && !symN.dim(0, 1).isSizeTensor()
                    && symN.dim(0, 1).evaluate(Bindings{{{"B", 2}, {"N", n}}, {}}, m) && m == fixedCount(n, pr, fr);
                if (!constOk || !symOk)
                {
                    std::printf("  fixed_r case N=%lld P=%d fixed_r=%d: %s\n", static_cast<long long>(n), pr, fr,
                        symN.out[0].d[1] ? symN.dim(0, 1).str().c_str() : "no expression");
                    break;
                }
            }
    check(constOk, "fixed_r: constant N gives a constant M = N - min(fixed_r, Na), 2 outputs, no size tensor");
    check(symOk, "fixed_r: symbolic N gives a (non data-dependent) expression equal to N - min(fixed_r, Na)");
}

void checkConfigureAndRuntime(IPluginCreatorV3One& creator, HostLogger& logger, CheckFn check)
{
    for (int32_t fixedR : {-1, 3})
    {
        Attrs a;
        a.fixedR = fixedR;
        Caps p = caps(create(creator, a, TensorRTPhase::kBUILD));
        int32_t const nbOut = p.build->getNbOutputs();
        auto io = profile(DataType::kBF16, 8, 197, 192, 64, nbOut);
        check(formatsAccepted(*p.build, io, nbOut), "supportsFormatCombination accepts the bf16 profile");
        check(p.build->configurePlugin(io.data(), 2, io.data() + 2, nbOut) == 0, "configurePlugin");
        size_t const ws = p.build->getWorkspaceSize(io.data(), 2, io.data() + 2, nbOut);
        check(ws >= saint::tokenDropWorkspaceSize(8, 197, 64), "workspace covers the kernels at the profile's max");
        Caps engine = caps(p.owner->clone());
        check(engine.runtime != nullptr, "clone");
        Caps ctx = caps(engine.runtime->attachToContext(nullptr));
        check(ctx.runtime != nullptr, "attachToContext");
        std::vector<PluginTensorDesc> in = {concrete(DataType::kBF16, {2, 197, 192}), concrete(DataType::kBF16, {2, 197, 64})};
        std::vector<PluginTensorDesc> out(nbOut, concrete(DataType::kINT32, {}));
        check(ctx.runtime->onShapeChange(in.data(), 2, out.data(), nbOut) == 0, "onShapeChange");
        in[1].dims.d[2] = 300;
        logger.errors.clear();
        check(ctx.runtime->onShapeChange(in.data(), 2, out.data(), nbOut) != 0 && logger.lastError().find("D above 256") != std::string::npos,
            "onShapeChange: D > 256 is an error through the logger");
        // enqueue validates before any launch: these never reach the kernels
        std::vector<char> buf(64);
        void const* ins[2] = {buf.data(), buf.data()};
        void* outs[3] = {buf.data(), buf.data(), buf.data()};
        logger.errors.clear();
        check(ctx.runtime->enqueue(in.data(), out.data(), ins, outs, buf.data(), nullptr) != 0
                && logger.lastError().find("metric dim D must be in [1, 256]") != std::string::npos,
            "enqueue: D > 256 is an error through the logger, not an abort");
        in[1].dims.d[2] = 64;
        in[0].dims.d[1] = in[1].dims.d[1] = 9000;
        logger.errors.clear();
        check(ctx.runtime->enqueue(in.data(), out.data(), ins, outs, buf.data(), nullptr) != 0
                && logger.lastError().find("N must be in [1, 8192]") != std::string::npos,
            "enqueue: N > 8192 is an error through the logger, not an abort");
    }
}

void checkRoundTrip(IPluginCreatorV3One& creator, CheckFn check)
{
    Attrs a;
    a.threshold = 0.6f;
    a.k = 3;
    a.gamma = 7.5f;
    a.protectedTokens = 2;
    a.fixedR = 11;
    Caps built = caps(create(creator, a, TensorRTPhase::kBUILD));
    SerializedFields plan(*built.runtime->getFieldsToSerialize());
    built.owner.reset(); // the plan outlives the build-phase plugin
    Caps rt = caps(creator.createPlugin("saint_drop_block0", plan.collection(), TensorRTPhase::kRUNTIME));
    check(rt.runtime != nullptr && plan.bytes() > 0, "runtime phase: plugin recreated from the serialized fields");
    saint::TokenDropAttrs back;
    std::string error;
    check(saint::parseFields(rt.runtime->getFieldsToSerialize(), back, error) && back.threshold == 0.6f && back.k == 3
            && back.gamma == 7.5f && back.protectedTokens == 2 && back.fixedR == 11,
        "runtime phase: every field survives the round trip");
    Net net(197, false, 192, 64);
    check(net.shapes(*rt.build, DataType::kFLOAT) == 0 && net.dim(0, 1).getConstantValue() == 197 - 11,
        "runtime phase: same static output shape");
}


//! Inputs and expected outputs written by tests/test_plugin_host.py (float32, little endian).
struct Case
{
    int64_t b{0}, n{0}, c{0}, d{0};
    Attrs attrs;
    std::vector<float> tokens, metric, expectedTokens;
    std::vector<int64_t> expectedKept;
};

bool readCase(std::string const& dir, Case& cs, int64_t& m)
{
    std::ifstream meta(dir + "/case.txt");
    Attrs& a = cs.attrs;
    if (!(meta >> cs.b >> cs.n >> cs.c >> cs.d >> a.threshold >> a.k >> a.gamma >> a.protectedTokens >> a.fixedR >> m))
        return false;
    return readRaw(dir + "/tokens.f32", cs.tokens, cs.b * cs.n * cs.c) && readRaw(dir + "/metric.f32", cs.metric, cs.b * cs.n * cs.d)
        && readRaw(dir + "/expected_tokens.f32", cs.expectedTokens, cs.b * m * cs.c)
        && readRaw(dir + "/expected_kept.i64", cs.expectedKept, cs.b * m);
}

//! Outputs of one enqueue, sized for the upper bound M <= N.
struct Outputs
{
    std::vector<float> tokens;
    std::vector<int64_t> kept;
    int32_t count{-1};
    int32_t rc{-1};
};

//! The runtime's part: attachToContext, onShapeChange, enqueue (kernels on the CPU runtime).
Outputs execute(IPluginV3& engineCopy, Case const& cs, size_t workspaceBytes, int64_t staticM)
{
    Outputs o;
    Caps ctx = caps(static_cast<IPluginV3OneRuntime*>(engineCopy.getCapabilityInterface(PluginCapabilityType::kRUNTIME))
                        ->attachToContext(nullptr));
    if (ctx.runtime == nullptr)
        return o;
    int32_t const nbOut = ctx.build->getNbOutputs();
    std::vector<PluginTensorDesc> in = {concrete(DataType::kFLOAT, {cs.b, cs.n, cs.c}), concrete(DataType::kFLOAT, {cs.b, cs.n, cs.d})};
    int64_t const m = staticM >= 0 ? staticM : -1; // a size-tensor dim is unknown before enqueue
    std::vector<PluginTensorDesc> out = {concrete(DataType::kFLOAT, {cs.b, m, cs.c}), concrete(DataType::kINT64, {cs.b, m}),
        concrete(DataType::kINT32, {})};
    if ((o.rc = ctx.runtime->onShapeChange(in.data(), 2, out.data(), nbOut)) != 0)
        return o;
    o.tokens.assign(cs.b * cs.n * cs.c, -7.f);
    o.kept.assign(cs.b * cs.n, -7);
    std::vector<unsigned char> workspace(workspaceBytes, 0xAB);
    void const* ins[2] = {cs.tokens.data(), cs.metric.data()};
    void* outs[3] = {o.tokens.data(), o.kept.data(), &o.count};
    o.rc = enqueueOnHost(*ctx.runtime, in, out, ins, outs, workspace);
    if (o.rc == 0 && nbOut == 2) // the plugin keeps the kernels' M after their workspace: it must equal the static M
        std::memcpy(&o.count, workspace.data() + saint::tokenDropWorkspaceSize(
            static_cast<int32_t>(cs.b), static_cast<int32_t>(cs.n), static_cast<int32_t>(cs.d)), sizeof(int32_t));
    return o;
}

bool sameAsExpected(Outputs const& o, Case const& cs, int64_t m)
{
    if (o.rc != 0 || o.count != m)
        return false;
    return std::memcmp(o.kept.data(), cs.expectedKept.data(), cs.b * m * sizeof(int64_t)) == 0
        && std::memcmp(o.tokens.data(), cs.expectedTokens.data(), cs.b * m * cs.c * sizeof(float)) == 0;
}

//! Build phase on the case's shapes; returns the static M (fixed_r) or -1 (size tensor), -2 on error.
int64_t buildPhase(IPluginV3OneBuild& build, Case const& cs, size_t& workspace)
{
    Net net(cs.n, false, cs.c, cs.d);
    if (net.shapes(build, DataType::kFLOAT) != 0)
        return -2;
    int32_t const nbOut = build.getNbOutputs();
    auto io = profile(DataType::kFLOAT, cs.b, cs.n, cs.c, cs.d, nbOut);
    io[2].desc.type = DataType::kFLOAT;
    if (!formatsAccepted(build, io, nbOut) || build.configurePlugin(io.data(), 2, io.data() + 2, nbOut) != 0)
        return -2;
    workspace = build.getWorkspaceSize(io.data(), 2, io.data() + 2, nbOut);
    if (net.dim(0, 1).isSizeTensor())
        return -1;
    return net.dim(0, 1).isConstant() ? net.dim(0, 1).getConstantValue() : -2;
}

} // namespace

int runCase(char const* dirArg)
{
    std::string const dir = dirArg;
    Case cs;
    int64_t m = 0;
    if (!readCase(dir, cs, m))
        return std::printf("cannot read the case in %s\n", dir.c_str()), 1;
    Process proc;
    Caps built = caps(proc.creator ? create(*proc.creator, cs.attrs, TensorRTPhase::kBUILD) : nullptr);
    if (built.build == nullptr)
        return std::printf("build phase: createPlugin failed: %s\n", proc.logger.lastError().c_str()), 1;
    size_t workspace = 0;
    int64_t const staticM = buildPhase(*built.build, cs, workspace);
    if (staticM == -2 || (cs.attrs.fixedR >= 0) != (staticM >= 0) || (staticM >= 0 && staticM != m))
        return std::printf("build phase failed (static M %lld, expected %lld): %s\n", static_cast<long long>(staticM),
                   static_cast<long long>(m), proc.logger.lastError().c_str()), 1;
    std::printf("build phase: ok (%s, workspace %zu bytes)\n", staticM >= 0 ? "static M" : "size tensor M", workspace);
    SerializedFields plan(*built.runtime->getFieldsToSerialize());
    Caps engine = caps(built.owner->clone());
    Outputs first = execute(*engine.owner, cs, workspace, staticM);
    built.owner.reset();
    engine.owner.reset();
    Caps rt = caps(proc.creator->createPlugin("saint_drop_block0", plan.collection(), TensorRTPhase::kRUNTIME));
    if (rt.runtime == nullptr)
        return std::printf("runtime phase: createPlugin failed: %s\n", proc.logger.lastError().c_str()), 1;
    Outputs second = execute(*rt.owner, cs, workspace, staticM);
    if (first.rc == 77 && second.rc == 77)
        return std::printf("serialization round trip: ok; enqueue SKIPPED: built without the CPU kernel runtime\n"), 77;
    bool const ok1 = sameAsExpected(first, cs, m);
    bool const ok2 = sameAsExpected(second, cs, m) && first.tokens == second.tokens && first.kept == second.kept;
    std::printf("build-phase enqueue: %s (rc %d, M %lld)\nruntime-phase enqueue: %s (rc %d)\n", ok1 ? "equal to the reference" : "MISMATCH",
        first.rc, static_cast<long long>(first.count), ok2 ? "identical" : "MISMATCH", second.rc);
    return ok1 && ok2 ? 0 : 1;
}

SerializedFields::SerializedFields(PluginFieldCollection const& fc)
{
    std::ostringstream os;
    for (int32_t i = 0; i < fc.nbFields; ++i)
    {
        PluginField const& f = fc.fields[i];
        size_t const size = f.type == PluginFieldType::kFLOAT64 || f.type == PluginFieldType::kINT64 ? 8 : 4;
        std::string name = f.name;
        int32_t const header[3] = {static_cast<int32_t>(name.size()), static_cast<int32_t>(f.type), f.length};
        os.write(reinterpret_cast<char const*>(header), sizeof(header));
        os.write(name.data(), static_cast<std::streamsize>(name.size()));
        os.write(static_cast<char const*>(f.data), static_cast<std::streamsize>(size * f.length));
    }
    std::string const blob = os.str();
    mBlob.assign(blob.begin(), blob.end());
    size_t at = 0;
    while (at < mBlob.size())
    {
        int32_t header[3];
        std::memcpy(header, mBlob.data() + at, sizeof(header));
        at += sizeof(header);
        mNames.emplace_back(mBlob.data() + at, header[0]);
        at += header[0];
        auto const type = static_cast<PluginFieldType>(header[1]);
        size_t const size = (type == PluginFieldType::kFLOAT64 || type == PluginFieldType::kINT64 ? 8 : 4) * header[2];
        mData.emplace_back(mBlob.begin() + static_cast<std::ptrdiff_t>(at), mBlob.begin() + static_cast<std::ptrdiff_t>(at + size));
        at += size;
        mFields.emplace_back(nullptr, nullptr, type, header[2]);
    }
    for (size_t i = 0; i < mFields.size(); ++i)
    {
        mFields[i].name = mNames[i].c_str();
        mFields[i].data = mData[i].data();
    }
    mCollection.nbFields = static_cast<int32_t>(mFields.size());
    mCollection.fields = mFields.data();
}

//! A finder whose logger changes, as each engine's does: the plugin must ask it at each message.
class SwitchingFinder : public ILoggerFinder
{
public:
    ILogger* findLogger() override { return current; }
    ILogger* current{nullptr};
};

void checkLoggerFinder(IPluginCreatorV3One& creator, ILoggerFinder& restore, CheckFn check)
{
    HostLogger first, second;
    SwitchingFinder finder;
    finder.current = &first;
    setLoggerFinder(&finder);
    PluginFieldCollection empty{};
    check(creator.createPlugin("a", &empty, TensorRTPhase::kBUILD) == nullptr, "no fields: refused");
    finder.current = &second;
    check(creator.createPlugin("b", &empty, TensorRTPhase::kBUILD) == nullptr, "no fields: refused again");
    check(first.errors.size() == 1 && second.errors.size() == 1,
        "setLoggerFinder: the finder is asked at each message (NvInferRuntime.h: findLogger from the calling thread)");
    setLoggerFinder(&restore);
}

void walkChecks(CheckFn check)
{
    Process proc;
    check(proc.creator != nullptr && proc.registry.count("SaintTokenDrop", "1", "saint") == 1,
        "registry: SaintTokenDrop v1 in namespace saint from getCreators");
    if (proc.creator == nullptr)
        return;
    checkVoteShapes(*proc.creator, check);
    checkFixedShapes(*proc.creator, check);
    checkConfigureAndRuntime(*proc.creator, proc.logger, check);
    checkRoundTrip(*proc.creator, check);
    checkLoggerFinder(*proc.creator, proc.finder, check);
}

} // namespace saint_host
