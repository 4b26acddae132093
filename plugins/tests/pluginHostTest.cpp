/*
 * Host-side checks of the SaintTokenDrop plugin and creator, with trtHost.h playing TensorRT
 * (no libnvinfer, no GPU): field parsing and validation, the builder's walk (getOutputDataTypes,
 * getOutputShapes through a real IExprBuilder, supportsFormatCombination, configurePlugin,
 * getWorkspaceSize), the runtime's walk (clone, attachToContext, onShapeChange, enqueue), the
 * serialization round trip and the limits. Prints "N passed, N failed", exits non-zero on failure.
 *   saint_plugin_host_test                 all checks that need no kernels
 *   saint_plugin_host_test --per-sample-case DIR   the same for a per_sample = 1 case
 *   saint_plugin_host_test --case DIR      also enqueue the case Python wrote into DIR (needs the
 *                                          CPU kernel runtime, SAINT_HOST_ENQUEUE; exit 77 without)
 */
#include "../saint_token_drop/saintTokenDropPlugin.h"
#include "hostWalk.h"
#include "trtHost.h"

#include <cmath>
#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <vector>

using namespace nvinfer1;

namespace
{
int gPassed = 0;
int gFailed = 0;

void check(bool ok, char const* what)
{
    if (ok)
        ++gPassed;
    else
    {
        ++gFailed;
        std::printf("FAILED: %s\n", what);
    }
}

class CaptureLogger : public ILogger
{
public:
    void log(Severity, AsciiChar const* msg) noexcept override { last = msg; }
    std::string last;
};

void checkBuildAndRuntimeWalk(saint::SaintTokenDropCreator&, CaptureLogger&);

struct Fields
{
    float threshold = 0.7f;
    int32_t k = 4;
    float gamma = 9.f;
    int32_t protectedTokens = 2;
    int32_t fixedR = -1;
    std::vector<PluginField> list()
    {
        return {PluginField("threshold", &threshold, PluginFieldType::kFLOAT32, 1),
            PluginField("k", &k, PluginFieldType::kINT32, 1), PluginField("gamma", &gamma, PluginFieldType::kFLOAT32, 1),
            PluginField("protected", &protectedTokens, PluginFieldType::kINT32, 1),
            PluginField("fixed_r", &fixedR, PluginFieldType::kINT32, 1)};
    }
};

IPluginV3* create(saint::SaintTokenDropCreator& creator, std::vector<PluginField> const& fields)
{
    PluginFieldCollection fc{static_cast<int32_t>(fields.size()), fields.data()};
    return creator.createPlugin("test", &fc, TensorRTPhase::kBUILD);
}

DynamicPluginTensorDesc desc(DataType type, std::vector<int64_t> maxDims)
{
    DynamicPluginTensorDesc d{};
    d.desc.type = type;
    d.desc.format = TensorFormat::kLINEAR;
    d.desc.dims.nbDims = static_cast<int32_t>(maxDims.size());
    d.max.nbDims = d.desc.dims.nbDims;
    for (size_t i = 0; i < maxDims.size(); ++i)
    {
        d.desc.dims.d[i] = -1;
        d.max.d[i] = maxDims[i];
    }
    return d;
}
} // namespace

int main(int argc, char** argv)
{
    if (argc == 3 && std::string(argv[1]) == "--case")
        return saint_host::runCase(argv[2]);
    if (argc == 3 && std::string(argv[1]) == "--per-sample-case")
        return saint_host::runPerSampleCase(argv[2]);
    CaptureLogger logger;
    saint::setLoadTimeLogger(&logger);
    saint::SaintTokenDropCreator creator;
    check(std::string(creator.getPluginName()) == "SaintTokenDrop", "plugin name");
    check(std::string(creator.getPluginVersion()) == "1", "plugin version");
    check(std::string(creator.getPluginNamespace()) == "saint", "plugin namespace");
    check(creator.getFieldNames()->nbFields == 7, "seven fields (per_sample and max_tokens optional)");

    Fields good;
    std::unique_ptr<IPluginV3> plugin(create(creator, good.list()));
    check(plugin != nullptr, "valid fields create a plugin");
    auto* core = static_cast<IPluginV3OneCore*>(plugin->getCapabilityInterface(PluginCapabilityType::kCORE));
    auto* build = static_cast<IPluginV3OneBuild*>(plugin->getCapabilityInterface(PluginCapabilityType::kBUILD));
    auto* runtime = static_cast<IPluginV3OneRuntime*>(plugin->getCapabilityInterface(PluginCapabilityType::kRUNTIME));
    check(core && build && runtime, "capability interfaces");
    check(std::string(core->getPluginName()) == "SaintTokenDrop", "core name");
    check(build->getNbOutputs() == 3, "three outputs (tokens, kept_index, size tensor)");

    // serialization round trip: the serialized fields recreate an identical plugin
    PluginFieldCollection const* ser = runtime->getFieldsToSerialize();
    check(ser && ser->nbFields == 7, "seven serialized fields (per_sample, max_tokens included)");
    std::unique_ptr<IPluginV3> again(creator.createPlugin("again", ser, TensorRTPhase::kRUNTIME));
    check(again != nullptr, "serialized fields recreate the plugin");
    saint::TokenDropAttrs attrs;
    std::string error;
    check(saint::parseFields(ser, attrs, error), "serialized fields parse");
    check(attrs.threshold == 0.7f && attrs.k == 4 && attrs.gamma == 9.f && attrs.protectedTokens == 2 && attrs.fixedR == -1,
        "serialized values round-trip");

    // int64 ints and float64 floats (some parsers emit them) are accepted
    {
        double thr = 0.5;
        int64_t k = 3;
        auto fields = good.list();
        fields[0] = PluginField("threshold", &thr, PluginFieldType::kFLOAT64, 1);
        fields[1] = PluginField("k", &k, PluginFieldType::kINT64, 1);
        check(saint::parseFields(&*std::make_unique<PluginFieldCollection>(PluginFieldCollection{5, fields.data()}), attrs, error)
                && attrs.threshold == 0.5f && attrs.k == 3,
            "float64/int64 fields");
    }

    // each bad case: one edit of a good field list, and the text the logged error must contain
    using Edit = std::function<void(std::vector<PluginField>&)>;
    auto setData = [](int i, void const* data) -> Edit { return [=](std::vector<PluginField>& v) { v[i].data = data; }; };
    auto replace = [](int i, PluginField field) -> Edit { return [=](std::vector<PluginField>& v) { v[i] = field; }; };
    auto erase = [](int i) -> Edit { return [=](std::vector<PluginField>& v) { v.erase(v.begin() + i); }; };
    Edit const duplicateFirst = [](std::vector<PluginField>& v) { v.push_back(v[0]); };
    struct Bad
    {
        char const* name;
        Edit edit;
        char const* needle;
    };
    Fields f;
    float badThreshold = 1.5f, floatK = 5.f, nan = std::nanf("");
    int32_t badK = 0, badFixed = -2, bigProtected = 9000, bigFixed = 9000;
    int64_t twoK[2] = {3, 4};
    char text[] = "5";
    std::vector<Bad> const bad = {
        {"missing k", erase(1), "missing field 'k'"},
        {"threshold 1.5", setData(0, &badThreshold), "'threshold' must be in [-1, 1]"},
        {"k 0", setData(1, &badK), "'k' must be >= 1"},
        {"fixed_r -2", setData(4, &badFixed), "'fixed_r'"},
        {"k as float", replace(1, PluginField("k", &floatK, PluginFieldType::kFLOAT32, 1)), "'k' must be an integer"},
        {"duplicate threshold", duplicateFirst, "given twice"},
        {"threshold NaN", setData(0, &nan), "'threshold' must be in [-1, 1]"},
        {"gamma NaN", setData(2, &nan), "'gamma' must be finite"},
        {"protected 9000", setData(3, &bigProtected), "'protected' must be in [0, 8192]"},
        {"fixed_r 9000", setData(4, &bigFixed), "'fixed_r' must be -1 (vote) or in [0, 8192]"},
        {"k with two values", replace(1, PluginField("k", twoK, PluginFieldType::kINT64, 2)), "'k' must hold exactly one value"},
        {"k as char", replace(1, PluginField("k", text, PluginFieldType::kCHAR, 1)), "'k' has an unsupported type"},
        {"gamma without data", setData(2, nullptr), "'gamma' must hold exactly one value"},
        {"missing fixed_r", erase(4), "missing field 'fixed_r'"},
    };
    for (auto const& b : bad)
    {
        logger.last.clear();
        auto fields = f.list();
        b.edit(fields);
        std::unique_ptr<IPluginV3> p(create(creator, fields));
        bool const ok = p == nullptr && logger.last.find(b.needle) != std::string::npos;
        check(ok, b.name);
        if (!ok)
            std::printf("  log was: %s\n", logger.last.c_str());
    }
    check(creator.createPlugin("null", nullptr, TensorRTPhase::kBUILD) == nullptr, "null field collection");

    // types and formats
    DataType out[3];
    DataType in[2] = {DataType::kHALF, DataType::kHALF};
    check(build->getOutputDataTypes(out, 3, in, 2) == 0 && out[0] == DataType::kHALF && out[1] == DataType::kINT64
            && out[2] == DataType::kINT32,
        "output types (the size tensor is kINT32)");
    check(build->getOutputDataTypes(out, 2, in, 2) != 0, "wrong output count rejected");
    std::vector<DynamicPluginTensorDesc> io = {desc(DataType::kBF16, {64, 257, 1280}), desc(DataType::kBF16, {64, 257, 80}),
        desc(DataType::kBF16, {64, 257, 1280}), desc(DataType::kINT64, {64, 257}), desc(DataType::kINT32, {})};
    bool allOk = true;
    for (int32_t pos = 0; pos < 5; ++pos)
        allOk = allOk && build->supportsFormatCombination(pos, io.data(), 2, 3);
    check(allOk, "bf16 combination supported");
    io[1].desc.type = DataType::kFLOAT;
    check(!build->supportsFormatCombination(1, io.data(), 2, 3), "mixed token/metric types rejected");
    io[1].desc.type = DataType::kBF16;
    io[0].desc.type = DataType::kINT8;
    check(!build->supportsFormatCombination(0, io.data(), 2, 3), "int8 tokens rejected");
    io[0].desc.type = DataType::kBF16;
    check(build->getWorkspaceSize(io.data(), 2, io.data() + 2, 3) == saint::tokenDropWorkspaceSize(64, 257, 80),
        "workspace sized from max dims");
    io[0].max.d[1] = 9000;
    check(build->configurePlugin(io.data(), 2, io.data() + 2, 3) != 0 && logger.last.find("N above 8192") != std::string::npos,
        "profile with N > 8192 rejected through the logger");
    io[0].max.d[1] = 257;
    io[1].max.d[2] = 300;
    check(build->configurePlugin(io.data(), 2, io.data() + 2, 3) != 0 && logger.last.find("D above 256") != std::string::npos,
        "profile with D > 256 rejected through the logger");
    io[1].max.d[2] = 80;
    check(build->configurePlugin(io.data(), 2, io.data() + 2, 3) == 0, "configure with matching dims");
    auto wrongRank = io;
    wrongRank[1].desc.dims.nbDims = 2;
    check(build->configurePlugin(wrongRank.data(), 2, wrongRank.data() + 2, 3) != 0, "rank-2 metric rejected");

    saint::TokenDropParams p{8, 197, 768, 64, 0.75f, 5, 10.f, 1, -1};
    check(saint::tokenDropCheckParams(p) == nullptr, "ViT-B params valid");
    p.dim = 300;
    check(saint::tokenDropCheckParams(p) != nullptr, "D > 256 rejected");

    checkBuildAndRuntimeWalk(creator, logger);

    std::printf("%d passed, %d failed\n", gPassed, gFailed);
    return gFailed == 0 ? 0 : 1;
}

namespace
{
void checkBuildAndRuntimeWalk(saint::SaintTokenDropCreator&, CaptureLogger&)
{
    saint_host::walkChecks(check);
    saint::setLoadTimeLogger(nullptr);
}
} // namespace
