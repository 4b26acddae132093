/*
 * A small C ABI over the SaintTokenDrop kernels, for tests and benchmarks through ctypes
 * (saint_export/kernels.py). No TensorRT involved.
 */
#include "../saint_token_drop/saintTokenDropHost.h"
#include "../saint_token_drop/saintTokenDropKernels.h"

#include <cuda_runtime_api.h>

extern "C"
{
    size_t saint_token_drop_workspace_size(int32_t batch, int32_t tokens, int32_t dim)
    {
        return saint::tokenDropWorkspaceSize(batch, tokens, dim);
    }

    //! Returns nullptr when the parameters are valid, else a message.
    char const* saint_token_drop_check(int32_t batch, int32_t tokens, int32_t channels, int32_t dim, float threshold,
        int32_t k, float gamma, int32_t protectedTokens, int32_t fixedR)
    {
        saint::TokenDropParams const p{batch, tokens, channels, dim, threshold, k, gamma, protectedTokens, fixedR};
        return saint::tokenDropCheckParams(p);
    }

    //! dtype: 0 float32, 1 float16, 2 bfloat16. Returns a cudaError_t value (0 = success).
    int32_t saint_token_drop(int32_t dtype, void const* tokens, void const* metric, int32_t batch, int32_t numTokens,
        int32_t channels, int32_t dim, float threshold, int32_t k, float gamma, int32_t protectedTokens, int32_t fixedR,
        void* tokensOut, int64_t* keptIndex, int32_t* keptCount, void* workspace, size_t workspaceBytes, void* stream)
    {
        saint::TokenDropParams const p{batch, numTokens, channels, dim, threshold, k, gamma, protectedTokens, fixedR};
        return static_cast<int32_t>(saint::tokenDropLaunch(p, static_cast<saint::DType>(dtype), tokens, metric, tokensOut,
            keptIndex, keptCount, workspace, workspaceBytes, static_cast<cudaStream_t>(stream)));
    }

    //! The per-sample vote: mask [B, N] int32 (nullptr = all real) in, maskOut [B, M] int32 out.
    int32_t saint_token_drop_masked(int32_t dtype, void const* tokens, void const* metric, int32_t const* mask,
        int32_t batch, int32_t numTokens, int32_t channels, int32_t dim, float threshold, int32_t k, float gamma,
        int32_t protectedTokens, int32_t fixedR, void* tokensOut, int64_t* keptIndex, int32_t* maskOut,
        int32_t* keptCount, void* workspace, size_t workspaceBytes, void* stream)
    {
        saint::TokenDropParams const p{batch, numTokens, channels, dim, threshold, k, gamma, protectedTokens, fixedR, 1};
        return static_cast<int32_t>(saint::tokenDropLaunch(p, static_cast<saint::DType>(dtype), tokens, metric, tokensOut,
            keptIndex, keptCount, workspace, workspaceBytes, static_cast<cudaStream_t>(stream), {mask, maskOut}));
    }

    //! The host twin (float32, CPU memory): nullptr on success, else a message.
    char const* saint_token_drop_host(float const* tokens, float const* metric, int32_t batch, int32_t numTokens,
        int32_t channels, int32_t dim, float threshold, int32_t k, float gamma, int32_t protectedTokens, int32_t fixedR,
        float* tokensOut, int64_t* keptIndex, int64_t* keptCount)
    {
        saint::TokenDropParams const p{batch, numTokens, channels, dim, threshold, k, gamma, protectedTokens, fixedR};
        return saint::tokenDropHost(p, tokens, metric, tokensOut, keptIndex, keptCount);
    }

    char const* saint_cuda_error_string(int32_t code)
    {
        return cudaGetErrorString(static_cast<cudaError_t>(code));
    }
}
