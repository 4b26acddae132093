/*
 * The per-sample SaintTokenDrop (per_sample = 1) through TensorRT's build and runtime phases, played
 * on the CPU (see hostWalk.h): shapes, types and formats, then enqueue before and after serialization.
 */
#include "hostParts.h"
#include "hostWalk.h"

#include <cstdio>
#include <cstring>

namespace saint_host
{
namespace
{

//! Inputs and expected outputs written by tests/test_plugin_host.py (float32, int64, mask bytes).
struct PerSampleCase
{
    int64_t b{0}, n{0}, c{0}, d{0}, m{0};
    float threshold{0.75f};
    int32_t k{5};
    float gamma{10.f};
    int32_t protectedTokens{1};
    int32_t fixedR{-1};
    int32_t perSample{1};
    int32_t maxTokens{0}; //!< N: LowerTensorRT's bound (N is symbolic below)
    std::vector<float> tokens, metric, expectedTokens;
    std::vector<int32_t> mask, expectedMask;
    std::vector<int64_t> expectedKept;

    std::vector<PluginField> fields()
    {
        return {PluginField(saint::kFIELD_THRESHOLD, &threshold, PluginFieldType::kFLOAT32, 1),
            PluginField(saint::kFIELD_K, &k, PluginFieldType::kINT32, 1),
            PluginField(saint::kFIELD_GAMMA, &gamma, PluginFieldType::kFLOAT32, 1),
            PluginField(saint::kFIELD_PROTECTED, &protectedTokens, PluginFieldType::kINT32, 1),
            PluginField(saint::kFIELD_FIXED_R, &fixedR, PluginFieldType::kINT32, 1),
            PluginField(saint::kFIELD_PER_SAMPLE, &perSample, PluginFieldType::kINT32, 1),
            PluginField(saint::kFIELD_MAX_TOKENS, &maxTokens, PluginFieldType::kINT32, 1)};
    }
};

bool readCase(std::string const& dir, PerSampleCase& cs)
{
    std::ifstream meta(dir + "/case.txt");
    if (!(meta >> cs.b >> cs.n >> cs.c >> cs.d >> cs.threshold >> cs.k >> cs.gamma >> cs.protectedTokens >> cs.fixedR >> cs.m))
        return false;
    cs.maxTokens = static_cast<int32_t>(cs.n);
    return readRaw(dir + "/tokens.f32", cs.tokens, cs.b * cs.n * cs.c) && readRaw(dir + "/metric.f32", cs.metric, cs.b * cs.n * cs.d)
        && readRaw(dir + "/mask.i32", cs.mask, cs.b * cs.n)
        && readRaw(dir + "/expected_tokens.f32", cs.expectedTokens, cs.b * cs.m * cs.c)
        && readRaw(dir + "/expected_kept.i64", cs.expectedKept, cs.b * cs.m)
        && readRaw(dir + "/expected_mask.i32", cs.expectedMask, cs.b * cs.m);
}

//! Build phase: 4 outputs (float, int64, int32, int32); M of all three tensors is the size tensor
//! (output 3) with upper bound N; the int32 mask and no other type is accepted at the mask positions.
char const* buildPhase(IPluginV3OneBuild& build, PerSampleCase const& cs, size_t& workspace)
{
    ExprBuilder eb;
    DimsExprs in[3]{};
    DimsExprs out[4]{};
    IDimensionExpr const* b = eb.symbol("B");
    IDimensionExpr const* n = eb.symbol("N");
    in[0].nbDims = in[1].nbDims = 3;
    in[2].nbDims = 2;
    for (DimsExprs& e : in)
    {
        e.d[0] = b;
        e.d[1] = n;
    }
    in[0].d[2] = eb.constant(cs.c);
    in[1].d[2] = eb.constant(cs.d);
    DataType const inTypes[3] = {DataType::kFLOAT, DataType::kFLOAT, DataType::kINT32};
    DataType outTypes[4]{};
    if (build.getNbOutputs() != 4 || build.getOutputDataTypes(outTypes, 4, inTypes, 3) != 0 || outTypes[0] != DataType::kFLOAT
        || outTypes[1] != DataType::kINT64 || outTypes[2] != DataType::kINT32 || outTypes[3] != DataType::kINT32)
        return "output count or types (want tokens, int64 kept_index, int32 mask_out, int32 kept_count)";
    if (build.getOutputShapes(in, 3, nullptr, 0, out, 4, eb) != 0 || eb.badCalls != 0 || eb.declared.count(3) != 1)
        return "getOutputShapes: no size tensor declared for output 3";
    int64_t upper = 0;
    auto const& m = static_cast<DimExpr const&>(*out[0].d[1]);
    if (!eb.declared[3]->b->evaluate(Bindings{{{"B", cs.b}, {"N", cs.n}}, {}}, upper) || upper != cs.n || !m.isSizeTensor()
        || out[1].d[1] != &m || out[2].nbDims != 2 || out[2].d[1] != &m || out[3].nbDims != 0)
        return "getOutputShapes: M must be the size tensor (upper bound N) of tokens_out, kept_index and mask_out";
    std::vector<DynamicPluginTensorDesc> io = {dyn(DataType::kFLOAT, {1, cs.n, cs.c}, {cs.b, cs.n, cs.c}),
        dyn(DataType::kFLOAT, {1, cs.n, cs.d}, {cs.b, cs.n, cs.d}), dyn(DataType::kINT32, {1, cs.n}, {cs.b, cs.n}),
        dyn(DataType::kFLOAT, {1, 0, cs.c}, {cs.b, cs.n, cs.c}), dyn(DataType::kINT64, {1, 0}, {cs.b, cs.n}),
        dyn(DataType::kINT32, {1, 0}, {cs.b, cs.n}), dyn(DataType::kINT32, {}, {})};
    for (int32_t pos = 0; pos < 7; ++pos)
        if (!build.supportsFormatCombination(pos, io.data(), 3, 4))
            return "supportsFormatCombination rejects the float / int32-mask profile";
    io[2].desc.type = DataType::kINT64;
    bool const wrongMask = build.supportsFormatCombination(2, io.data(), 3, 4);
    io[2].desc.type = DataType::kBOOL;
    bool const boolMask = build.supportsFormatCombination(2, io.data(), 3, 4);
    io[2].desc.type = DataType::kINT32;
    if (wrongMask || boolMask || build.configurePlugin(io.data(), 3, io.data() + 3, 4) != 0)
        return "an int64 or bool mask is accepted, or configurePlugin fails";
    workspace = build.getWorkspaceSize(io.data(), 3, io.data() + 3, 4);
    return workspace >= saint::tokenDropWorkspaceSize(static_cast<int32_t>(cs.b), static_cast<int32_t>(cs.n), static_cast<int32_t>(cs.d))
        ? nullptr : "workspace smaller than the kernels need";
}

struct Outputs
{
    std::vector<float> tokens;
    std::vector<int64_t> kept;
    std::vector<int32_t> mask;
    int32_t count{-1};
    int32_t rc{-1};
};

Outputs execute(IPluginV3& engineCopy, PerSampleCase const& cs, size_t workspaceBytes)
{
    Outputs o;
    Caps ctx = caps(static_cast<IPluginV3OneRuntime*>(engineCopy.getCapabilityInterface(PluginCapabilityType::kRUNTIME))
                        ->attachToContext(nullptr));
    if (ctx.runtime == nullptr)
        return o;
    std::vector<PluginTensorDesc> in = {concrete(DataType::kFLOAT, {cs.b, cs.n, cs.c}), concrete(DataType::kFLOAT, {cs.b, cs.n, cs.d}),
        concrete(DataType::kINT32, {cs.b, cs.n})};
    std::vector<PluginTensorDesc> out = {concrete(DataType::kFLOAT, {cs.b, -1, cs.c}), concrete(DataType::kINT64, {cs.b, -1}),
        concrete(DataType::kINT32, {cs.b, -1}), concrete(DataType::kINT32, {})};
    if ((o.rc = ctx.runtime->onShapeChange(in.data(), 3, out.data(), 4)) != 0)
        return o;
    o.tokens.assign(cs.b * cs.n * cs.c, -7.f);
    o.kept.assign(cs.b * cs.n, -7);
    o.mask.assign(cs.b * cs.n, 7);
    std::vector<unsigned char> workspace(workspaceBytes, 0xAB);
    void const* ins[3] = {cs.tokens.data(), cs.metric.data(), cs.mask.data()};
    void* outs[4] = {o.tokens.data(), o.kept.data(), o.mask.data(), &o.count};
    o.rc = enqueueOnHost(*ctx.runtime, in, out, ins, outs, workspace);
    return o;
}

bool sameAsExpected(Outputs const& o, PerSampleCase const& cs)
{
    return o.rc == 0 && o.count == cs.m && std::memcmp(o.kept.data(), cs.expectedKept.data(), cs.b * cs.m * sizeof(int64_t)) == 0
        && std::memcmp(o.mask.data(), cs.expectedMask.data(), cs.b * cs.m * sizeof(int32_t)) == 0
        && std::memcmp(o.tokens.data(), cs.expectedTokens.data(), cs.b * cs.m * cs.c * sizeof(float)) == 0;
}

} // namespace

int runPerSampleCase(char const* dirArg)
{
    PerSampleCase cs;
    if (!readCase(dirArg, cs))
        return std::printf("cannot read the per-sample case in %s\n", dirArg), 1;
    Process proc;
    std::vector<PluginField> f = cs.fields();
    PluginFieldCollection fc{static_cast<int32_t>(f.size()), f.data()};
    Caps built = caps(proc.creator ? proc.creator->createPlugin("saint_drop_block0", &fc, TensorRTPhase::kBUILD) : nullptr);
    if (built.build == nullptr)
        return std::printf("build phase: createPlugin failed: %s\n", proc.logger.lastError().c_str()), 1;
    size_t workspace = 0;
    if (char const* why = buildPhase(*built.build, cs, workspace))
        return std::printf("build phase failed: %s %s\n", why, proc.logger.lastError().c_str()), 1;
    std::printf("build phase: ok (4 outputs, int32 mask, size tensor M, workspace %zu bytes)\n", workspace);
    SerializedFields plan(*built.runtime->getFieldsToSerialize());
    Caps engine = caps(built.owner->clone());
    Outputs first = execute(*engine.owner, cs, workspace);
    built.owner.reset();
    engine.owner.reset();
    Caps rt = caps(proc.creator->createPlugin("saint_drop_block0", plan.collection(), TensorRTPhase::kRUNTIME));
    if (rt.runtime == nullptr || rt.build->getNbOutputs() != 4)
        return std::printf("runtime phase: the plugin recreated from its fields is not per-sample: %s\n", proc.logger.lastError().c_str()), 1;
    Outputs second = execute(*rt.owner, cs, workspace);
    if (first.rc == 77 && second.rc == 77)
        return std::printf("serialization round trip: ok; enqueue SKIPPED: built without the CPU kernel runtime\n"), 77;
    bool const ok1 = sameAsExpected(first, cs);
    bool const ok2 = sameAsExpected(second, cs) && first.tokens == second.tokens && first.kept == second.kept && first.mask == second.mask;
    std::printf("build-phase enqueue: %s (rc %d, M %lld)\nruntime-phase enqueue: %s (rc %d)\n", ok1 ? "equal to the reference" : "MISMATCH",
        first.rc, static_cast<long long>(first.count), ok2 ? "identical" : "MISMATCH", second.rc);
    return ok1 && ok2 ? 0 : 1;
}

} // namespace saint_host
