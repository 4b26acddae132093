/*
 * SaintTokenDrop TensorRT plugin (IPluginV3: OneCore, OneBuild, OneRuntime) and its creator.
 *
 * Inputs : 0 tokens [B, N, C], 1 metric [B, N, D]           (float, half or bf16; same type)
 *          2 mask [B, N] int32, nonzero = real token          (per_sample = 1 only)
 * Outputs: 0 tokens_out [B, M, C] (input type)
 *          1 kept_index [B, M] int64
 *          2 kept_count  int32 scalar: the size tensor M = N - r; vote mode only
 * Plugin I/O never uses kBOOL or kUINT8 (NvInferRuntime.h: not supported for PluginTensorDesc::type
 * and IPluginV3OneBuild::getOutputDataTypes): the lowered ONNX casts the bool mask to int32 and back.
 * The size tensor is kINT32 (the only size-tensor type before TensorRT 10.15), and its opt and upper
 * bound are build-time constants: N when N is static, else the field max_tokens (an upper bound on N
 * set at export), since opt must not depend on a size tensor (IExprBuilder::declareSizeTensor).
 * With fixed_r >= 0, M = N - min(fixed_r, Na) (Na = ceil((N - P) / 2), 0 when N - P < 2) is an
 * expression of the input dims: the plugin then has two outputs and no data-dependent shape.
 * per_sample = 1 (SaintTokenDrop version 2): every sample votes alone, rows padded to the longest:
 *          2 mask_out [B, M] int32, 3 kept_count (the size tensor, fixed_r or not: M depends on the mask)
 * Fields : threshold (float32), k (int32), gamma (float32), protected (int32), fixed_r (int32),
 *          per_sample (int32, optional, default 0), max_tokens (int32, optional, default 0 = unknown),
 *          the attribute names of the ONNX node saint.SaintTokenDrop (see spec.yaml). Engines
 *          serialized before per_sample or max_tokens existed load them as 0.
 */
#pragma once

#include "saintTokenDropKernels.h"

#include <NvInferRuntime.h>

#include <string>
#include <vector>

namespace saint
{

constexpr char const* kPLUGIN_NAME = "SaintTokenDrop";
constexpr char const* kPLUGIN_VERSION = "1";
constexpr char const* kPLUGIN_NAMESPACE = "saint";

//! Field names (the ONNX node's attribute names), defined once.
constexpr char const* kFIELD_THRESHOLD = "threshold";
constexpr char const* kFIELD_K = "k";
constexpr char const* kFIELD_GAMMA = "gamma";
constexpr char const* kFIELD_PROTECTED = "protected";
constexpr char const* kFIELD_FIXED_R = "fixed_r";
constexpr char const* kFIELD_PER_SAMPLE = "per_sample";
constexpr char const* kFIELD_MAX_TOKENS = "max_tokens";
constexpr int32_t kNB_FIELDS = 7;
constexpr int32_t kNB_REQUIRED_FIELDS = 5; //!< the first five; per_sample and max_tokens may be absent (0)
constexpr char const* kFIELD_NAMES[kNB_FIELDS]
    = {kFIELD_THRESHOLD, kFIELD_K, kFIELD_GAMMA, kFIELD_PROTECTED, kFIELD_FIXED_R, kFIELD_PER_SAMPLE, kFIELD_MAX_TOKENS};
//! Largest metric dim D the kernels accept.
constexpr int64_t kMaxMetricDim = 256;

//! The rule's attributes, validated once on creation.
struct TokenDropAttrs
{
    float threshold{0.75f};
    int32_t k{5};
    float gamma{10.f};
    int32_t protectedTokens{1};
    int32_t fixedR{-1};
    int32_t perSample{0};
    int32_t maxTokens{0}; //!< upper bound on N known at export; 0 = unknown (N must then be static)
};

//! Outputs of a plugin with these attributes: 3 in vote mode (with the size tensor), 2 with fixed_r,
//! 4 per sample (mask_out and the size tensor).
inline int32_t tokenDropNbOutputs(TokenDropAttrs const& attrs) noexcept
{
    return attrs.perSample ? 4 : attrs.fixedR >= 0 ? 2 : 3;
}

//! Inputs: tokens and metric, and the mask per sample.
inline int32_t tokenDropNbInputs(TokenDropAttrs const& attrs) noexcept { return attrs.perSample ? 3 : 2; }

//! The plugin's PluginField list over ``attrs`` (used to serialize and to describe the creator's fields).
std::vector<nvinfer1::PluginField> tokenDropFields(TokenDropAttrs* attrs);

//! Parse and validate a field collection; on error returns false and sets ``error`` to a message
//! naming the field.
bool parseFields(nvinfer1::PluginFieldCollection const* fc, TokenDropAttrs& attrs, std::string& error) noexcept;

class SaintTokenDropPlugin : public nvinfer1::IPluginV3,
                             public nvinfer1::IPluginV3OneCore,
                             public nvinfer1::IPluginV3OneBuild,
                             public nvinfer1::IPluginV3OneRuntime
{
public:
    explicit SaintTokenDropPlugin(TokenDropAttrs const& attrs);
    ~SaintTokenDropPlugin() override = default;

    // IPluginV3
    nvinfer1::IPluginCapability* getCapabilityInterface(nvinfer1::PluginCapabilityType type) noexcept override;
    nvinfer1::IPluginV3* clone() noexcept override;

    // IPluginV3OneCore
    char const* getPluginName() const noexcept override { return kPLUGIN_NAME; }
    char const* getPluginVersion() const noexcept override { return kPLUGIN_VERSION; }
    char const* getPluginNamespace() const noexcept override { return kPLUGIN_NAMESPACE; }

    // IPluginV3OneBuild
    int32_t getNbOutputs() const noexcept override { return tokenDropNbOutputs(mAttrs); }
    int32_t configurePlugin(nvinfer1::DynamicPluginTensorDesc const* in, int32_t nbInputs,
        nvinfer1::DynamicPluginTensorDesc const* out, int32_t nbOutputs) noexcept override;
    int32_t getOutputDataTypes(nvinfer1::DataType* outputTypes, int32_t nbOutputs, nvinfer1::DataType const* inputTypes,
        int32_t nbInputs) const noexcept override;
    int32_t getOutputShapes(nvinfer1::DimsExprs const* inputs, int32_t nbInputs, nvinfer1::DimsExprs const* shapeInputs,
        int32_t nbShapeInputs, nvinfer1::DimsExprs* outputs, int32_t nbOutputs,
        nvinfer1::IExprBuilder& exprBuilder) noexcept override;
    bool supportsFormatCombination(int32_t pos, nvinfer1::DynamicPluginTensorDesc const* inOut, int32_t nbInputs,
        int32_t nbOutputs) noexcept override;
    size_t getWorkspaceSize(nvinfer1::DynamicPluginTensorDesc const* inputs, int32_t nbInputs,
        nvinfer1::DynamicPluginTensorDesc const* outputs, int32_t nbOutputs) const noexcept override;

    // IPluginV3OneRuntime
    int32_t onShapeChange(nvinfer1::PluginTensorDesc const* in, int32_t nbInputs, nvinfer1::PluginTensorDesc const* out,
        int32_t nbOutputs) noexcept override;
    int32_t enqueue(nvinfer1::PluginTensorDesc const* inputDesc, nvinfer1::PluginTensorDesc const* outputDesc,
        void const* const* inputs, void* const* outputs, void* workspace, cudaStream_t stream) noexcept override;
    nvinfer1::IPluginV3* attachToContext(nvinfer1::IPluginResourceContext* context) noexcept override;
    nvinfer1::PluginFieldCollection const* getFieldsToSerialize() noexcept override;

private:
    int32_t staticOutputShapes(nvinfer1::DimsExprs const& tokens, nvinfer1::IExprBuilder& eb,
        nvinfer1::IDimensionExpr const*& m) const noexcept;
    //! declareSizeTensor(outputIndex, bound, bound) with a build-time constant bound on N.
    int32_t sizeTensorShape(nvinfer1::DimsExprs const& tokens, int32_t outputIndex, nvinfer1::IExprBuilder& eb,
        nvinfer1::IDimensionExpr const*& m) const noexcept;

    TokenDropAttrs mAttrs;
    std::vector<nvinfer1::PluginField> mFields;
    nvinfer1::PluginFieldCollection mFieldCollection{};
};

class SaintTokenDropCreator : public nvinfer1::IPluginCreatorV3One
{
public:
    SaintTokenDropCreator();
    ~SaintTokenDropCreator() override = default;

    char const* getPluginName() const noexcept override { return kPLUGIN_NAME; }
    char const* getPluginVersion() const noexcept override { return kPLUGIN_VERSION; }
    char const* getPluginNamespace() const noexcept override { return kPLUGIN_NAMESPACE; }
    nvinfer1::PluginFieldCollection const* getFieldNames() noexcept override { return &mFieldCollection; }
    nvinfer1::IPluginV3* createPlugin(char const* name, nvinfer1::PluginFieldCollection const* fc,
        nvinfer1::TensorRTPhase phase) noexcept override;

private:
    std::vector<nvinfer1::PluginField> mFields;
    nvinfer1::PluginFieldCollection mFieldCollection{};
};

//! Where plugin messages go: the logger that the finder given to setLoggerFinder returns at the time
//! of the message (TensorRT: findLogger() belongs to the thread of the plugin call), else the logger
//! found at load time, else stderr.
void logError(std::string const& message) noexcept;
void logWarning(std::string const& message) noexcept;
void setLoggerFinder(nvinfer1::ILoggerFinder* finder) noexcept;
void setLoadTimeLogger(nvinfer1::ILogger* logger) noexcept;

} // namespace saint
