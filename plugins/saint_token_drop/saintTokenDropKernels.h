/*
 * SaintTokenDrop CUDA kernels: a plain C++ launch API with no TensorRT dependency.
 *
 * Semantics are saint_export.reference.rule.saint_drop (the reference):
 *   m = normalize(metric[:, P:]) in float32; a = even rows, b = odd rows
 *   S = a b^T; cnt = #{S >= tau}; r = (sum_b #{cnt >= K}) / B  (or min(fixed_r, Na)), clamp [0, Na]
 *   score = cnt * exp(gamma * (mean valid S - tau)) if cnt > 0 else mean(S row)
 *   stable descending order per sample; drop the first r a-tokens
 *   out = [protected, kept a in score order, all b in order]; r == 0 -> identity
 * r is decided on the device: nothing here synchronises with the host.
 *
 * Per-sample vote (perSample = 1, saint_drop_per_sample): sample b holds len_b = sum(mask[b]) real
 * tokens (a prefix of its row; no mask = all N), votes its own r_b over them alone, and the output is
 * padded to M = max_b (len_b - r_b): kept_index -1, zero tokens and maskOut 0 in padding slots.
 */
#pragma once

#include <cstddef>
#include <cstdint>
#include <cuda_runtime_api.h>

namespace saint
{

enum class DType : int32_t
{
    kFLOAT = 0,
    kHALF = 1,
    kBF16 = 2,
};

struct TokenDropParams
{
    int32_t batch;           // B
    int32_t tokens;          // N
    int32_t channels;        // C (tokens' last dim)
    int32_t dim;             // D (metric's last dim)
    float threshold;         // tau in [-1, 1]
    int32_t k;               // K >= 1
    float gamma;
    int32_t protectedTokens; // P >= 0
    int32_t fixedR;          // -1 = vote
    int32_t perSample = 0;   // 1 = every sample votes alone (batch-invariant); needs maskOut
};

//! Key-padding masks of the per-sample vote, one int32 per token (nonzero = real token): TensorRT
//! plugins cannot take or give BOOL/UINT8 tensors (NvInferRuntime.h, PluginTensorDesc::type).
struct TokenDropMasks
{
    int32_t const* mask = nullptr; // [B, N] input, real tokens first; nullptr = every token real
    int32_t* maskOut = nullptr;    // [B, N] capacity; the first B * M entries are written (0/1), packed [B, M]
};

//! Largest N the kernels accept (the sort holds Na = ceil((N - P) / 2) scores in shared memory).
constexpr int32_t kMaxTokens = 8192;

//! Bytes of scratch memory the launch needs for the given maximum shapes.
size_t tokenDropWorkspaceSize(int32_t batch, int32_t tokens, int32_t dim) noexcept;

//! Validate parameters; returns nullptr when fine, else a static message.
char const* tokenDropCheckParams(TokenDropParams const& p) noexcept;

//! Enqueue the whole op on ``stream``.
//!   tokens    [B, N, C] of dtype, metric [B, N, D] of dtype (device)
//!   tokensOut [B, N, C] capacity; the first M = N - r rows per sample are written
//!   keptIndex [B, N] int64 capacity; the first M per sample are written
//!   keptCount  one int32: M (TensorRT size tensors are int32)
//!   masks      perSample only: the input mask (optional) and maskOut (required)
//! Returns the first CUDA error (launch errors are checked after each kernel).
cudaError_t tokenDropLaunch(TokenDropParams const& p, DType dtype, void const* tokens, void const* metric,
    void* tokensOut, int64_t* keptIndex, int32_t* keptCount, void* workspace, size_t workspaceBytes,
    cudaStream_t stream, TokenDropMasks masks = {}) noexcept;

} // namespace saint
