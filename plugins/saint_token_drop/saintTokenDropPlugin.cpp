/*
 * SaintTokenDrop plugin implementation. No exception crosses a noexcept boundary: every
 * entry point that can throw catches and reports through the plugin logger.
 */
#include "saintTokenDropPlugin.h"

#include <cmath>
#include <cstring>
#include <exception>
#include <iostream>

using namespace nvinfer1;

namespace saint
{
namespace
{
ILogger* gLogger{nullptr};

void log(ILogger::Severity severity, std::string const& message) noexcept
{
    std::string const line = std::string("[SaintTokenDrop] ") + message;
    if (gLogger != nullptr)
        gLogger->log(severity, line.c_str());
    else
        std::cerr << line << std::endl;
}

bool readScalar(PluginField const& f, double& out, bool wantInt, std::string& error)
{
    if (f.length != 1 || f.data == nullptr)
    {
        error = std::string("field '") + f.name + "' must hold exactly one value";
        return false;
    }
    switch (f.type)
    {
    case PluginFieldType::kFLOAT32: out = *static_cast<float const*>(f.data); break;
    case PluginFieldType::kFLOAT64: out = *static_cast<double const*>(f.data); break;
    case PluginFieldType::kINT32: out = *static_cast<int32_t const*>(f.data); break;
    case PluginFieldType::kINT64: out = static_cast<double>(*static_cast<int64_t const*>(f.data)); break;
    default:
        error = std::string("field '") + f.name + "' has an unsupported type";
        return false;
    }
    bool const isInt = f.type == PluginFieldType::kINT32 || f.type == PluginFieldType::kINT64;
    if (wantInt && !isInt)
    {
        error = std::string("field '") + f.name + "' must be an integer (int32 or int64)";
        return false;
    }
    if (!wantInt && isInt)
    {
        error = std::string("field '") + f.name + "' must be a float (float32 or float64)";
        return false;
    }
    return true;
}

int32_t fail(std::string const& message) noexcept
{
    log(ILogger::Severity::kERROR, message);
    return -1;
}

} // namespace

void logError(std::string const& message) noexcept { log(ILogger::Severity::kERROR, message); }
void logWarning(std::string const& message) noexcept { log(ILogger::Severity::kWARNING, message); }
void setLogger(ILogger* logger) noexcept { gLogger = logger; }

bool parseFields(PluginFieldCollection const* fc, TokenDropAttrs& attrs, std::string& error) noexcept
{
    try
    {
        if (fc == nullptr)
        {
            error = "no fields given";
            return false;
        }
        bool seen[5] = {false, false, false, false, false};
        char const* names[5] = {"threshold", "k", "gamma", "protected", "fixed_r"};
        for (int32_t i = 0; i < fc->nbFields; ++i)
        {
            PluginField const& f = fc->fields[i];
            if (f.name == nullptr)
            {
                error = "a field has no name";
                return false;
            }
            int32_t which = -1;
            for (int32_t j = 0; j < 5; ++j)
                if (std::strcmp(f.name, names[j]) == 0)
                    which = j;
            if (which < 0)
            {
                if (std::strcmp(f.name, "plugin_version") != 0 && std::strcmp(f.name, "plugin_namespace") != 0)
                    logWarning(std::string("ignoring unknown field '") + f.name + "'");
                continue;
            }
            if (seen[which])
            {
                error = std::string("field '") + f.name + "' given twice";
                return false;
            }
            seen[which] = true;
            double v = 0;
            bool const wantInt = which == 1 || which == 3 || which == 4;
            if (!readScalar(f, v, wantInt, error))
                return false;
            switch (which)
            {
            case 0:
                if (!std::isfinite(v) || v < -1.0 || v > 1.0)
                {
                    error = "field 'threshold' must be in [-1, 1]";
                    return false;
                }
                attrs.threshold = static_cast<float>(v);
                break;
            case 1:
                if (v < 1 || v > 1e9)
                {
                    error = "field 'k' must be >= 1";
                    return false;
                }
                attrs.k = static_cast<int32_t>(v);
                break;
            case 2:
                if (!std::isfinite(v))
                {
                    error = "field 'gamma' must be finite";
                    return false;
                }
                attrs.gamma = static_cast<float>(v);
                break;
            case 3:
                if (v < 0 || v > kMaxTokens)
                {
                    error = "field 'protected' must be in [0, 8192]";
                    return false;
                }
                attrs.protectedTokens = static_cast<int32_t>(v);
                break;
            default:
                if (v < -1 || v > kMaxTokens)
                {
                    error = "field 'fixed_r' must be -1 (vote) or in [0, 8192]";
                    return false;
                }
                attrs.fixedR = static_cast<int32_t>(v);
                break;
            }
        }
        for (int32_t j = 0; j < 5; ++j)
        {
            if (!seen[j])
            {
                error = std::string("missing field '") + names[j] + "'";
                return false;
            }
        }
        return true;
    }
    catch (std::exception const& e)
    {
        error = e.what();
        return false;
    }
}

SaintTokenDropPlugin::SaintTokenDropPlugin(TokenDropAttrs const& attrs)
    : mAttrs(attrs)
{
    mFields = {
        PluginField("threshold", &mAttrs.threshold, PluginFieldType::kFLOAT32, 1),
        PluginField("k", &mAttrs.k, PluginFieldType::kINT32, 1),
        PluginField("gamma", &mAttrs.gamma, PluginFieldType::kFLOAT32, 1),
        PluginField("protected", &mAttrs.protectedTokens, PluginFieldType::kINT32, 1),
        PluginField("fixed_r", &mAttrs.fixedR, PluginFieldType::kINT32, 1),
    };
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

int32_t SaintTokenDropPlugin::configurePlugin(
    DynamicPluginTensorDesc const* in, int32_t nbInputs, DynamicPluginTensorDesc const* out, int32_t nbOutputs) noexcept
{
    if (in == nullptr || out == nullptr || nbInputs != 2 || nbOutputs != 3)
        return fail("expects 2 inputs (tokens, metric) and 3 outputs");
    if (in[0].desc.dims.nbDims != 3 || in[1].desc.dims.nbDims != 3)
        return fail("tokens and metric must be rank 3: [B, N, C] and [B, N, D]");
    for (int32_t d = 0; d < 2; ++d)
    {
        int64_t const a = in[0].desc.dims.d[d];
        int64_t const b = in[1].desc.dims.d[d];
        if (a >= 0 && b >= 0 && a != b)
            return fail("tokens and metric disagree on B or N");
    }
    int64_t const dim = in[1].desc.dims.d[2];
    if (dim > 256)
        return fail("metric dim D above 256 is not supported");
    return 0;
}

int32_t SaintTokenDropPlugin::getOutputDataTypes(
    DataType* outputTypes, int32_t nbOutputs, DataType const* inputTypes, int32_t nbInputs) const noexcept
{
    if (outputTypes == nullptr || inputTypes == nullptr || nbOutputs != 3 || nbInputs != 2)
        return fail("getOutputDataTypes: expects 2 inputs and 3 outputs");
    outputTypes[0] = inputTypes[0];
    outputTypes[1] = DataType::kINT64;
    outputTypes[2] = DataType::kINT64;
    return 0;
}

int32_t SaintTokenDropPlugin::getOutputShapes(DimsExprs const* inputs, int32_t nbInputs, DimsExprs const* shapeInputs,
    int32_t nbShapeInputs, DimsExprs* outputs, int32_t nbOutputs, IExprBuilder& exprBuilder) noexcept
{
    (void) shapeInputs;
    (void) nbShapeInputs;
    if (inputs == nullptr || outputs == nullptr || nbInputs != 2 || nbOutputs != 3 || inputs[0].nbDims != 3)
        return fail("getOutputShapes: expects tokens [B, N, C], metric [B, N, D] and 3 outputs");
    IDimensionExpr const* n = inputs[0].d[1];
    // M = N - r is decided on the device: a size tensor with upper bound N
    IDimensionExpr const* m = exprBuilder.declareSizeTensor(2, *n, *n);
    if (m == nullptr)
        return fail("declareSizeTensor failed");
    outputs[0].nbDims = 3;
    outputs[0].d[0] = inputs[0].d[0];
    outputs[0].d[1] = m;
    outputs[0].d[2] = inputs[0].d[2];
    outputs[1].nbDims = 2;
    outputs[1].d[0] = inputs[0].d[0];
    outputs[1].d[1] = m;
    outputs[2].nbDims = 0;
    return 0;
}

bool SaintTokenDropPlugin::supportsFormatCombination(
    int32_t pos, DynamicPluginTensorDesc const* inOut, int32_t nbInputs, int32_t nbOutputs) noexcept
{
    if (inOut == nullptr || nbInputs != 2 || nbOutputs != 3 || pos < 0 || pos >= 5)
        return false;
    PluginTensorDesc const& desc = inOut[pos].desc;
    if (desc.format != TensorFormat::kLINEAR)
        return false;
    switch (pos)
    {
    case 0: return desc.type == DataType::kFLOAT || desc.type == DataType::kHALF || desc.type == DataType::kBF16;
    case 1:
    case 2: return desc.type == inOut[0].desc.type;
    default: return desc.type == DataType::kINT64;
    }
}

size_t SaintTokenDropPlugin::getWorkspaceSize(
    DynamicPluginTensorDesc const* inputs, int32_t nbInputs, DynamicPluginTensorDesc const* outputs, int32_t nbOutputs) const noexcept
{
    (void) outputs;
    (void) nbOutputs;
    if (inputs == nullptr || nbInputs != 2)
        return 0;
    return tokenDropWorkspaceSize(static_cast<int32_t>(inputs[0].max.d[0]), static_cast<int32_t>(inputs[0].max.d[1]),
        static_cast<int32_t>(inputs[1].max.d[2]));
}

int32_t SaintTokenDropPlugin::onShapeChange(
    PluginTensorDesc const* in, int32_t nbInputs, PluginTensorDesc const* out, int32_t nbOutputs) noexcept
{
    (void) out;
    if (in == nullptr || nbInputs != 2 || nbOutputs != 3 || in[0].dims.nbDims != 3 || in[1].dims.nbDims != 3)
        return fail("onShapeChange: bad input ranks");
    if (in[0].dims.d[0] != in[1].dims.d[0] || in[0].dims.d[1] != in[1].dims.d[1])
        return fail("onShapeChange: tokens and metric disagree on B or N");
    return 0;
}

int32_t SaintTokenDropPlugin::enqueue(PluginTensorDesc const* inputDesc, PluginTensorDesc const* outputDesc,
    void const* const* inputs, void* const* outputs, void* workspace, cudaStream_t stream) noexcept
{
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
    cudaError_t const err = tokenDropLaunch(p, dtype, inputs[0], inputs[1], outputs[0], static_cast<int64_t*>(outputs[1]),
        static_cast<int64_t*>(outputs[2]), workspace, tokenDropWorkspaceSize(p.batch, p.tokens, p.dim), stream);
    if (err != cudaSuccess)
        return fail(std::string("enqueue: CUDA error: ") + cudaGetErrorString(err));
    return 0;
}

IPluginV3* SaintTokenDropPlugin::attachToContext(IPluginResourceContext* context) noexcept
{
    (void) context;
    return clone();
}

PluginFieldCollection const* SaintTokenDropPlugin::getFieldsToSerialize() noexcept
{
    return &mFieldCollection;
}

SaintTokenDropCreator::SaintTokenDropCreator()
{
    mFields = {
        PluginField("threshold", nullptr, PluginFieldType::kFLOAT32, 1),
        PluginField("k", nullptr, PluginFieldType::kINT32, 1),
        PluginField("gamma", nullptr, PluginFieldType::kFLOAT32, 1),
        PluginField("protected", nullptr, PluginFieldType::kINT32, 1),
        PluginField("fixed_r", nullptr, PluginFieldType::kINT32, 1),
    };
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
