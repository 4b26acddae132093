/*
 * SaintTokenDrop plugin implementation. No exception crosses a noexcept boundary: every
 * entry point that can throw catches and reports through the plugin logger.
 */
#include "saintTokenDropPlugin.h"

#include <atomic>
#include <cmath>
#include <cstring>
#include <exception>
#include <iostream>

using namespace nvinfer1;

namespace saint
{
namespace
{
std::atomic<ILoggerFinder*> gFinder{nullptr};
std::atomic<ILogger*> gLoadTimeLogger{nullptr};

void log(ILogger::Severity severity, std::string const& message) noexcept
{
    try
    {
        std::string const line = std::string("[SaintTokenDrop] ") + message;
        ILoggerFinder* finder = gFinder.load();
        ILogger* logger = finder != nullptr ? finder->findLogger() : gLoadTimeLogger.load();
        if (logger != nullptr)
            logger->log(severity, line.c_str());
        else
            std::cerr << line << std::endl;
    }
    catch (...)
    {
    }
}


int32_t fail(std::string const& message) noexcept
{
    log(ILogger::Severity::kERROR, message);
    return -1;
}

//! Runs ``body``; an exception is logged (naming ``where``) and turns into ``onError``. Every
//! noexcept entry point goes through this, so no exception crosses the TensorRT boundary.
template <typename R, typename F>
R guarded(char const* where, R onError, F&& body) noexcept
{
    try
    {
        return body();
    }
    catch (std::exception const& e)
    {
        log(ILogger::Severity::kERROR, std::string(where) + ": " + e.what());
    }
    catch (...)
    {
        log(ILogger::Severity::kERROR, std::string(where) + ": unknown exception");
    }
    return onError;
}

} // namespace

void logError(std::string const& message) noexcept { log(ILogger::Severity::kERROR, message); }
void logWarning(std::string const& message) noexcept { log(ILogger::Severity::kWARNING, message); }
void setLoggerFinder(ILoggerFinder* finder) noexcept { gFinder.store(finder); }
void setLoadTimeLogger(ILogger* logger) noexcept { gLoadTimeLogger.store(logger); }


SaintTokenDropPlugin::SaintTokenDropPlugin(TokenDropAttrs const& attrs)
    : mAttrs(attrs)
    , mFields(tokenDropFields(&mAttrs))
{
    mFieldCollection.nbFields = static_cast<int32_t>(mFields.size());
    mFieldCollection.fields = mFields.data();
}

IPluginCapability* SaintTokenDropPlugin::getCapabilityInterface(PluginCapabilityType type) noexcept
{
    switch (type)
    {
    case PluginCapabilityType::kCORE: return static_cast<IPluginV3OneCore*>(this);
    case PluginCapabilityType::kBUILD: return static_cast<IPluginV3OneBuild*>(this);
    case PluginCapabilityType::kRUNTIME: return static_cast<IPluginV3OneRuntime*>(this);
    }
    return nullptr;
}

IPluginV3* SaintTokenDropPlugin::clone() noexcept
{
    try
    {
        return new SaintTokenDropPlugin(mAttrs);
    }
    catch (std::exception const& e)
    {
        logError(std::string("clone failed: ") + e.what());
        return nullptr;
    }
}

namespace
{
//! A known dim (>= 0) above ``limit``.
bool above(int64_t dim, int64_t limit) { return dim >= 0 && dim > limit; }

//! Bytes kept at the end of the workspace for M when the plugin has no kept_count output.
constexpr size_t kCountSlot = 256;
} // namespace

int32_t SaintTokenDropPlugin::configurePlugin(
    DynamicPluginTensorDesc const* in, int32_t nbInputs, DynamicPluginTensorDesc const* out, int32_t nbOutputs) noexcept
{
    return guarded("configurePlugin", int32_t{-1}, [&]() -> int32_t {
        if (in == nullptr || out == nullptr || nbInputs != tokenDropNbInputs(mAttrs) || nbOutputs != getNbOutputs())
            return fail("configurePlugin: expects " + std::to_string(tokenDropNbInputs(mAttrs)) + " inputs (tokens, metric"
                + (mAttrs.perSample ? ", mask) and " : ") and ") + std::to_string(getNbOutputs()) + " outputs");
        if (in[0].desc.dims.nbDims != 3 || in[1].desc.dims.nbDims != 3)
            return fail("tokens and metric must be rank 3: [B, N, C] and [B, N, D]");
        if (mAttrs.perSample && in[2].desc.dims.nbDims != 2)
            return fail("mask must be rank 2: [B, N]");
        for (int32_t d = 0; d < 2; ++d)
        {
            int64_t const a = in[0].desc.dims.d[d];
            int64_t const b = in[1].desc.dims.d[d];
            if (a >= 0 && b >= 0 && a != b)
                return fail("tokens and metric disagree on B or N");
        }
        if (above(in[1].desc.dims.d[2], kMaxMetricDim) || (in[1].max.nbDims == 3 && above(in[1].max.d[2], kMaxMetricDim)))
            return fail("metric dim D above 256 is not supported");
        if (above(in[0].desc.dims.d[1], kMaxTokens) || (in[0].max.nbDims == 3 && above(in[0].max.d[1], kMaxTokens)))
            return fail("token count N above 8192 is not supported");
        return 0;
    });
}

int32_t SaintTokenDropPlugin::getOutputDataTypes(
    DataType* outputTypes, int32_t nbOutputs, DataType const* inputTypes, int32_t nbInputs) const noexcept
{
    return guarded("getOutputDataTypes", int32_t{-1}, [&]() -> int32_t {
        if (outputTypes == nullptr || inputTypes == nullptr || nbOutputs != getNbOutputs() || nbInputs != tokenDropNbInputs(mAttrs))
            return fail("getOutputDataTypes: expects " + std::to_string(tokenDropNbInputs(mAttrs)) + " inputs and "
                + std::to_string(getNbOutputs()) + " outputs");
        outputTypes[0] = inputTypes[0];
        for (int32_t i = 1; i < nbOutputs; ++i)
            outputTypes[i] = i == 1 ? DataType::kINT64 : DataType::kINT32; // kept_index; mask_out, kept_count
        return 0;
    });
}

//! M = N - min(fixed_r, Na') with Na' = min(ceil(F / 2), max(F - 1, 0)), F = max(N - P, 0): Na' is
//! ceil((N - P) / 2) except that it is 0 when fewer than two tokens are free (the rule's identity case).
int32_t SaintTokenDropPlugin::staticOutputShapes(DimsExprs const& tokens, IExprBuilder& eb, IDimensionExpr const*& m) const noexcept
{
    return guarded("getOutputShapes", int32_t{-1}, [&]() -> int32_t {
        IDimensionExpr const* n = tokens.d[1];
        IDimensionExpr const* zero = eb.constant(0);
        IDimensionExpr const* one = eb.constant(1);
        IDimensionExpr const* two = eb.constant(2);
        IDimensionExpr const* p = eb.constant(mAttrs.protectedTokens);
        IDimensionExpr const* fixed = eb.constant(mAttrs.fixedR);
        if (!n || !zero || !one || !two || !p || !fixed)
            return fail("getOutputShapes: constant() failed");
        using Op = DimensionOperation;
        IDimensionExpr const* free = eb.operation(Op::kMAX, *eb.operation(Op::kSUB, *n, *p), *zero);
        IDimensionExpr const* na = eb.operation(Op::kMIN, *eb.operation(Op::kCEIL_DIV, *free, *two),
            *eb.operation(Op::kMAX, *eb.operation(Op::kSUB, *free, *one), *zero));
        m = eb.operation(Op::kSUB, *n, *eb.operation(Op::kMIN, *fixed, *na));
        return m == nullptr ? fail("getOutputShapes: operation() failed") : 0;
    });
}

int32_t SaintTokenDropPlugin::sizeTensorShape(
    DimsExprs const& tokens, int32_t outputIndex, IExprBuilder& eb, IDimensionExpr const*& m) const noexcept
{
    return guarded("getOutputShapes", int32_t{-1}, [&]() -> int32_t {
        IDimensionExpr const* n = tokens.d[1];
        int64_t bound = n != nullptr && n->isConstant() ? n->getConstantValue() : mAttrs.maxTokens;
        if (bound <= 0)
            return fail("getOutputShapes: the token count N is not static and the field 'max_tokens' is not set: "
                        "re-export the model (saint-export sets max_tokens on every TensorRT-lowered node)");
        // opt and upper: constants (opt must not depend on a size tensor, and N downstream of a vote is one)
        IDimensionExpr const* c = eb.constant(bound);
        m = c != nullptr ? eb.declareSizeTensor(outputIndex, *c, *c) : nullptr;
        return m == nullptr ? fail("declareSizeTensor failed") : 0;
    });
}

int32_t SaintTokenDropPlugin::getOutputShapes(DimsExprs const* inputs, int32_t nbInputs, DimsExprs const* shapeInputs,
    int32_t nbShapeInputs, DimsExprs* outputs, int32_t nbOutputs, IExprBuilder& exprBuilder) noexcept
{
    return guarded("getOutputShapes", int32_t{-1}, [&]() -> int32_t {
        (void) shapeInputs;
        (void) nbShapeInputs;
        if (inputs == nullptr || outputs == nullptr || nbInputs != tokenDropNbInputs(mAttrs) || nbOutputs != getNbOutputs()
            || inputs[0].nbDims != 3)
            return fail("getOutputShapes: expects tokens [B, N, C], metric [B, N, D]" + std::string(mAttrs.perSample ? ", mask [B, N]" : "")
                + " and " + std::to_string(getNbOutputs()) + " outputs");
        IDimensionExpr const* m = nullptr;
        if (mAttrs.perSample)
        {
            // M = the longest sample after its own vote: a size tensor, fixed_r or not
            if (sizeTensorShape(inputs[0], 3, exprBuilder, m) != 0)
                return -1;
            outputs[2].nbDims = 2;
            outputs[2].d[0] = inputs[0].d[0];
            outputs[2].d[1] = m;
            outputs[3].nbDims = 0;
        }
        else if (mAttrs.fixedR >= 0)
        {
            if (staticOutputShapes(inputs[0], exprBuilder, m) != 0)
                return -1;
        }
        else
        {
            // M = N - r is decided on the device: a size tensor
            if (sizeTensorShape(inputs[0], 2, exprBuilder, m) != 0)
                return -1;
            outputs[2].nbDims = 0;
        }
        outputs[0].nbDims = 3;
        outputs[0].d[0] = inputs[0].d[0];
        outputs[0].d[1] = m;
        outputs[0].d[2] = inputs[0].d[2];
        outputs[1].nbDims = 2;
        outputs[1].d[0] = inputs[0].d[0];
        outputs[1].d[1] = m;
        return 0;
    });
}

bool SaintTokenDropPlugin::supportsFormatCombination(
    int32_t pos, DynamicPluginTensorDesc const* inOut, int32_t nbInputs, int32_t nbOutputs) noexcept
{
    return guarded("supportsFormatCombination", false, [&]() -> bool {
        if (inOut == nullptr || nbInputs != tokenDropNbInputs(mAttrs) || nbOutputs != getNbOutputs() || pos < 0
            || pos >= nbInputs + nbOutputs)
            return false;
        PluginTensorDesc const& desc = inOut[pos].desc;
        if (desc.format != TensorFormat::kLINEAR)
            return false;
        if (pos == 0)
            return desc.type == DataType::kFLOAT || desc.type == DataType::kHALF || desc.type == DataType::kBF16;
        if (pos == 1 || pos == nbInputs) // metric, tokens_out
            return desc.type == inOut[0].desc.type;
        if (pos == nbInputs + 1) // kept_index
            return desc.type == DataType::kINT64;
        return desc.type == DataType::kINT32; // mask, mask_out, kept_count
    });
}

size_t SaintTokenDropPlugin::getWorkspaceSize(
    DynamicPluginTensorDesc const* inputs, int32_t nbInputs, DynamicPluginTensorDesc const* outputs, int32_t nbOutputs) const noexcept
{
    return guarded("getWorkspaceSize", size_t{0}, [&]() -> size_t {
        (void) outputs;
        (void) nbOutputs;
        if (inputs == nullptr || nbInputs != tokenDropNbInputs(mAttrs))
            return 0;
        size_t const kernels = tokenDropWorkspaceSize(static_cast<int32_t>(inputs[0].max.d[0]),
            static_cast<int32_t>(inputs[0].max.d[1]), static_cast<int32_t>(inputs[1].max.d[2]));
        return kernels + (getNbOutputs() == 2 ? kCountSlot : 0);
    });
}

int32_t SaintTokenDropPlugin::onShapeChange(
    PluginTensorDesc const* in, int32_t nbInputs, PluginTensorDesc const* out, int32_t nbOutputs) noexcept
{
    return guarded("onShapeChange", int32_t{-1}, [&]() -> int32_t {
        (void) out;
        if (in == nullptr || nbInputs != tokenDropNbInputs(mAttrs) || nbOutputs != getNbOutputs() || in[0].dims.nbDims != 3
            || in[1].dims.nbDims != 3 || (mAttrs.perSample && in[2].dims.nbDims != 2))
            return fail("onShapeChange: bad input ranks or input/output count");
        if (in[0].dims.d[0] != in[1].dims.d[0] || in[0].dims.d[1] != in[1].dims.d[1])
            return fail("onShapeChange: tokens and metric disagree on B or N");
        if (above(in[1].dims.d[2], kMaxMetricDim))
            return fail("onShapeChange: metric dim D above 256 is not supported");
        if (above(in[0].dims.d[1], kMaxTokens))
            return fail("onShapeChange: token count N above 8192 is not supported");
        return 0;
    });
}

int32_t SaintTokenDropPlugin::enqueue(PluginTensorDesc const* inputDesc, PluginTensorDesc const* outputDesc,
    void const* const* inputs, void* const* outputs, void* workspace, cudaStream_t stream) noexcept
{
    return guarded("enqueue", int32_t{-1}, [&]() -> int32_t {
        (void) outputDesc;
        if (inputDesc == nullptr || inputs == nullptr || outputs == nullptr)
            return fail("enqueue: null arguments");
        TokenDropParams p{};
        p.batch = static_cast<int32_t>(inputDesc[0].dims.d[0]);
        p.tokens = static_cast<int32_t>(inputDesc[0].dims.d[1]);
        p.channels = static_cast<int32_t>(inputDesc[0].dims.d[2]);
        p.dim = static_cast<int32_t>(inputDesc[1].dims.d[2]);
        p.threshold = mAttrs.threshold;
        p.k = mAttrs.k;
        p.gamma = mAttrs.gamma;
        p.protectedTokens = mAttrs.protectedTokens;
        p.fixedR = mAttrs.fixedR;
        p.perSample = mAttrs.perSample;
        if (char const* bad = tokenDropCheckParams(p))
            return fail(std::string("enqueue: ") + bad);
        DType dtype = DType::kFLOAT;
        switch (inputDesc[0].type)
        {
        case DataType::kFLOAT: dtype = DType::kFLOAT; break;
        case DataType::kHALF: dtype = DType::kHALF; break;
        case DataType::kBF16: dtype = DType::kBF16; break;
        default: return fail("enqueue: unsupported input type");
        }
        size_t const kernelBytes = tokenDropWorkspaceSize(p.batch, p.tokens, p.dim);
        // without the kept_count output, M goes to a slot after the kernels' workspace
        int32_t const nbOut = getNbOutputs();
        int32_t* keptCount = nbOut >= 3
            ? static_cast<int32_t*>(outputs[nbOut - 1])
            : reinterpret_cast<int32_t*>(static_cast<char*>(workspace) + kernelBytes);
        TokenDropMasks masks{};
        if (mAttrs.perSample)
            masks = {static_cast<int32_t const*>(inputs[2]), static_cast<int32_t*>(outputs[2])};
        cudaError_t const err = tokenDropLaunch(p, dtype, inputs[0], inputs[1], outputs[0], static_cast<int64_t*>(outputs[1]),
            keptCount, workspace, kernelBytes, stream, masks);
        if (err != cudaSuccess)
            return fail(std::string("enqueue: CUDA error: ") + cudaGetErrorString(err));
        return 0;
    });
}

IPluginV3* SaintTokenDropPlugin::attachToContext(IPluginResourceContext* context) noexcept
{
    return guarded("attachToContext", static_cast<IPluginV3*>(nullptr), [&]() -> IPluginV3* {
        (void) context;
        return clone();
    });
}

PluginFieldCollection const* SaintTokenDropPlugin::getFieldsToSerialize() noexcept
{
    return guarded("getFieldsToSerialize", static_cast<PluginFieldCollection const*>(nullptr), [&]() -> PluginFieldCollection const* {
        return &mFieldCollection;
    });
}

SaintTokenDropCreator::SaintTokenDropCreator()
    : mFields(tokenDropFields(nullptr))
{
    mFieldCollection.nbFields = static_cast<int32_t>(mFields.size());
    mFieldCollection.fields = mFields.data();
}

IPluginV3* SaintTokenDropCreator::createPlugin(char const* name, PluginFieldCollection const* fc, TensorRTPhase phase) noexcept
{
    (void) phase;
    try
    {
        TokenDropAttrs attrs;
        std::string error;
        if (!parseFields(fc, attrs, error))
        {
            logError(std::string("cannot create plugin '") + (name ? name : "") + "': " + error);
            return nullptr;
        }
        return new SaintTokenDropPlugin(attrs);
    }
    catch (std::exception const& e)
    {
        logError(std::string("createPlugin failed: ") + e.what());
        return nullptr;
    }
    catch (...)
    {
        logError("createPlugin failed");
        return nullptr;
    }
}

} // namespace saint
