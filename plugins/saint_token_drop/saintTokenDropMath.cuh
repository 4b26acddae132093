/*
 * The per-element arithmetic of SaintTokenDrop, shared by the CUDA kernels and the host twin
 * (saintTokenDropHost.cpp) so the index and ordering logic is tested on machines without a GPU.
 */
#pragma once

#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define SAINT_HD __host__ __device__ __forceinline__
#else
#define SAINT_HD inline
#endif

namespace saint
{

//! r for the whole batch: fixed (clamped) or floor(votes / B); 0 when fewer than 2 free tokens.
SAINT_HD int32_t voteR(int32_t votes, int32_t batch, int32_t fixedR, int32_t na, int32_t freeTokens)
{
    int32_t r = fixedR >= 0 ? (fixedR < na ? fixedR : na) : votes / batch;
    r = r < 0 ? 0 : (r > na ? na : r);
    return freeTokens < 2 ? 0 : r;
}

//! cnt * exp(gamma * (mean valid S - tau)) when cnt > 0, else the row mean of S.
SAINT_HD float rowScore(int32_t count, float sumValid, float sumAll, int32_t nb, float threshold, float gamma)
{
    float const cntf = static_cast<float>(count);
    if (count > 0)
        return cntf * expf(gamma * (sumValid / (cntf > 1.f ? cntf : 1.f) - threshold));
    return sumAll / static_cast<float>(nb);
}

//! a before b in the descending order: NaN above every number (as torch.sort(descending=True)
//! places it), then larger first; equal keys (NaN with NaN included) keep index order.
SAINT_HD bool rankedAbove(float a, float b)
{
    bool const aNan = a != a;
    bool const bNan = b != b;
    return aNan ? !bNan : (!bNan && a > b);
}

//! Position of score i in a stable descending order of s[0..n): NaN first, then larger first,
//! ties by lower index. A permutation of 0..n-1 for any input (no duplicate ranks).
SAINT_HD int32_t stableDescendingRank(float const* s, int32_t n, int32_t i)
{
    float const si = s[i];
    int32_t rank = 0;
    for (int32_t j = 0; j < n; ++j)
        rank += rankedAbove(s[j], si) || (j < i && !rankedAbove(si, s[j]));
    return rank;
}

//! Input position of output token t: [protected, kept a-side in score order, all b-side].
SAINT_HD int64_t keptPosition(int32_t t, int32_t protectedTokens, int32_t keptA, int32_t r, int32_t const* order)
{
    if (t < protectedTokens)
        return t;
    if (t < protectedTokens + keptA)
        return protectedTokens + 2 * static_cast<int64_t>(order[r + t - protectedTokens]);
    return protectedTokens + 1 + 2 * static_cast<int64_t>(t - protectedTokens - keptA);
}

} // namespace saint
