/*
 * Host twin of the SaintTokenDrop kernels (float32 only): the same steps and the same shared
 * arithmetic (saintTokenDropMath.cuh), run sequentially on the CPU. Used to test the index,
 * vote and ordering logic on machines without a GPU; not a production path.
 */
#pragma once

#include "saintTokenDropKernels.h"

namespace saint
{

//! tokens [B, N, C], metric [B, N, D] -> tokensOut [B, M, C], keptIndex [B, M], *keptCount = M.
//! Returns nullptr on success, else a message.
char const* tokenDropHost(TokenDropParams const& p, float const* tokens, float const* metric, float* tokensOut,
    int64_t* keptIndex, int64_t* keptCount) noexcept;

} // namespace saint
