/*
 * SaintTokenDrop kernels. Launch shapes:
 *   normalizeKernel   one warp per unprotected token           (B * (N - P) warps)
 *   rowStatsKernel    one warp per a-row, b-rows of the sample   grid (ceil(Na / 8), B), 256 threads
 *                     staged through shared memory in tiles
 *   lengthsKernel     one block per sample: real tokens len_b (per-sample vote only)
 *   orderKernel       one block per sample: device-side r, stable rank sort, kept_index, M
 *   packKeptKernel    kept_index (and maskOut) packed to stride M; writes keptCount
 *   gatherKernel      one block per (output row, sample); 16-byte vector copies when aligned
 * Similarity, counts and scores are float32 for every input dtype.
 */
#include "saintTokenDropKernels.h"
#include "saintTokenDropMath.cuh"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

namespace saint
{
namespace
{

constexpr int32_t kWarp = 32;
constexpr int32_t kRowsPerBlock = 8;   // a-rows (warps) per rowStats block
constexpr int32_t kTileB = 32;         // b-rows per shared-memory tile
constexpr int32_t kMaxDim = 256;
constexpr int32_t kOrderThreads = 512;
constexpr float kEps = 1e-12f;

template <typename T>
__device__ __forceinline__ float toFloat(T v);
template <>
__device__ __forceinline__ float toFloat<float>(float v) { return v; }
template <>
__device__ __forceinline__ float toFloat<__half>(__half v) { return __half2float(v); }
template <>
__device__ __forceinline__ float toFloat<__nv_bfloat16>(__nv_bfloat16 v) { return __bfloat162float(v); }

__device__ __forceinline__ float warpSum(float v)
{
    for (int32_t o = kWarp / 2; o > 0; o /= 2)
        v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

struct Workspace
{
    float* normed;        // [B, N - P, D]
    int32_t* cnt;         // [B, Na]
    float* score;         // [B, Na]
    int32_t* votes;       // [1] rows with cnt >= K over the whole batch
    int32_t* r;           // [1] the batch's r (batch vote)
    int32_t* m;           // [1] M, the output token count
    int32_t* sampleVotes; // [B] per-sample vote: each sample's rows with cnt >= K
    int32_t* lens;        // [B] per-sample vote: real tokens of each sample
};

size_t alignUp(size_t x) { return (x + 255) & ~size_t(255); }

//! The int32 counters: votes, r, m, then B sample votes and B lengths.
size_t counterCount(int32_t batch) { return 3 + 2 * static_cast<size_t>(batch); }

Workspace carve(void* base, int32_t batch, int32_t tokens, int32_t dim)
{
    char* p = static_cast<char*>(base);
    size_t const rows = static_cast<size_t>(batch) * tokens;
    Workspace w{};
    w.normed = reinterpret_cast<float*>(p);
    p += alignUp(rows * dim * sizeof(float));
    w.cnt = reinterpret_cast<int32_t*>(p);
    p += alignUp(rows * sizeof(int32_t));
    w.score = reinterpret_cast<float*>(p);
    p += alignUp(rows * sizeof(float));
    w.votes = reinterpret_cast<int32_t*>(p);
    w.r = w.votes + 1;
    w.m = w.votes + 2;
    w.sampleVotes = w.votes + 3;
    w.lens = w.sampleVotes + batch;
    return w;
}

//! normed[b, t, :] = metric[b, P + t, :] / max(||.||, eps), float32
template <typename T>
__global__ void normalizeKernel(T const* __restrict__ metric, float* __restrict__ normed, int32_t batch, int32_t tokens,
    int32_t dim, int32_t protectedTokens)
{
    int32_t const free = tokens - protectedTokens;
    int64_t const warp = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / kWarp;
    int32_t const lane = threadIdx.x % kWarp;
    if (warp >= static_cast<int64_t>(batch) * free)
        return;
    int64_t const b = warp / free;
    int64_t const t = warp % free;
    T const* src = metric + (b * tokens + protectedTokens + t) * dim;
    float ss = 0.f;
    for (int32_t d = lane; d < dim; d += kWarp)
    {
        float const v = toFloat(src[d]);
        ss += v * v;
    }
    float const norm = fmaxf(sqrtf(warpSum(ss)), kEps);
    float* dst = normed + (b * free + t) * dim;
    for (int32_t d = lane; d < dim; d += kWarp)
        dst[d] = toFloat(src[d]) / norm;
}

//! Per a-row: cnt, score; vote count (atomic) of the batch, or of the sample when ``lens`` is given
//! (then only the sample's own rows and columns, those within its len_b real tokens, take part).
__global__ void rowStatsKernel(float const* __restrict__ normed, int32_t* __restrict__ cnt, float* __restrict__ score,
    int32_t* __restrict__ votes, int32_t const* __restrict__ lens, int32_t free, int32_t dim, float threshold, int32_t k,
    float gamma, int32_t protectedTokens)
{
    __shared__ float tileB[kTileB][kMaxDim + 1];
    int32_t const na = (free + 1) / 2;
    int32_t const b = blockIdx.y;
    int32_t const ownFree = lens ? max(lens[b] - protectedTokens, 0) : free;
    int32_t const nb = ownFree / 2;
    int32_t const warpId = threadIdx.x / kWarp;
    int32_t const lane = threadIdx.x % kWarp;
    int32_t const row = blockIdx.x * kRowsPerBlock + warpId;
    bool const active = row < (ownFree + 1) / 2;
    float const* base = normed + static_cast<int64_t>(b) * free * dim;

    // each lane keeps its slice of the a-row in registers (dim <= kMaxDim = 8 * 32)
    float aReg[kMaxDim / kWarp];
#pragma unroll
    for (int32_t i = 0; i < kMaxDim / kWarp; ++i)
    {
        int32_t const d = lane + i * kWarp;
        aReg[i] = (active && d < dim) ? base[static_cast<int64_t>(2 * row) * dim + d] : 0.f;
    }
    int32_t count = 0;
    float sumValid = 0.f;
    float sumAll = 0.f;
    for (int32_t j0 = 0; j0 < nb; j0 += kTileB)
    {
        int32_t const tile = min(kTileB, nb - j0);
        __syncthreads();
        for (int32_t idx = threadIdx.x; idx < tile * dim; idx += blockDim.x)
        {
            int32_t const jj = idx / dim;
            int32_t const d = idx % dim;
            tileB[jj][d] = base[static_cast<int64_t>(2 * (j0 + jj) + 1) * dim + d];
        }
        __syncthreads();
        if (!active)
            continue;
        for (int32_t jj = 0; jj < tile; ++jj)
        {
            float partial = 0.f;
#pragma unroll
            for (int32_t i = 0; i < kMaxDim / kWarp; ++i)
            {
                int32_t const d = lane + i * kWarp;
                if (d < dim)
                    partial += aReg[i] * tileB[jj][d];
            }
            float const s = warpSum(partial);
            sumAll += s;
            if (s >= threshold)
            {
                ++count;
                sumValid += s;
            }
        }
    }
    if (!active || lane != 0)
        return;
    int64_t const o = static_cast<int64_t>(b) * na + row;
    cnt[o] = count;
    score[o] = rowScore(count, sumValid, sumAll, nb, threshold, gamma);
    if (count >= k)
        atomicAdd(votes + (lens ? b : 0), 1);
}

//! lens[b] = real tokens of sample b (nonzero mask entries counted); N for every sample without a mask.
__global__ void lengthsKernel(int32_t const* __restrict__ mask, int32_t* __restrict__ lens, int32_t tokens)
{
    int32_t const b = blockIdx.x;
    int32_t count = 0;
    for (int32_t t = threadIdx.x; t < tokens; t += blockDim.x)
        count += mask ? (mask[static_cast<int64_t>(b) * tokens + t] != 0) : 1;
    atomicAdd(lens + b, count);
}

//! One block per sample: r (device-side), stable descending ranks, kept_index rows of stride N (-1 past
//! the sample's own count), M. Batch vote: one r from ``votes[0]``; per-sample vote (``lens`` given):
//! the sample's own r over its len_b real tokens, and M = max over samples (atomic).
__global__ void orderKernel(float const* __restrict__ score, int32_t const* __restrict__ votes,
    int32_t const* __restrict__ lens, int32_t* __restrict__ rOut, int32_t* __restrict__ mOut,
    int64_t* __restrict__ keptIndex, int32_t batch, int32_t tokens, int32_t protectedTokens, int32_t fixedR)
{
    extern __shared__ unsigned char smem[];
    int32_t const free = tokens - protectedTokens;
    int32_t const na = free > 0 ? (free + 1) / 2 : 0;
    float* s = reinterpret_cast<float*>(smem);
    int32_t* order = reinterpret_cast<int32_t*>(s + na);
    int32_t const b = blockIdx.x;

    int32_t const len = lens ? lens[b] : tokens;
    int32_t const ownFree = len - protectedTokens;
    int32_t const ownNa = ownFree > 0 ? (ownFree + 1) / 2 : 0;
    int32_t const r = lens ? voteR(votes[b], 1, fixedR, ownNa, ownFree) : voteR(votes[0], batch, fixedR, na, free);
    int32_t const m = len - r;
    if (threadIdx.x == 0)
    {
        if (lens)
            atomicMax(mOut, m);
        else if (b == 0)
        {
            *rOut = r;
            *mOut = m;
        }
    }
    int64_t* kept = keptIndex + static_cast<int64_t>(b) * tokens;
    if (r == 0)
    {
        for (int32_t t = threadIdx.x; t < tokens; t += blockDim.x)
            kept[t] = t < len ? t : -1;
        return;
    }
    for (int32_t i = threadIdx.x; i < ownNa; i += blockDim.x)
        s[i] = score[static_cast<int64_t>(b) * na + i];
    __syncthreads();
    // stable descending rank: larger first, ties by lower index
    for (int32_t i = threadIdx.x; i < ownNa; i += blockDim.x)
        order[stableDescendingRank(s, ownNa, i)] = i;
    __syncthreads();
    int32_t const keptA = ownNa - r;
    for (int32_t t = threadIdx.x; t < tokens; t += blockDim.x)
        kept[t] = t < m ? keptPosition(t, protectedTokens, keptA, r, order) : -1;
}

//! out[b, t, :] = tokens[b, kept[b, t], :] for t < M; one block per (t, b).
template <typename T>
__global__ void gatherKernel(T const* __restrict__ tokens, T* __restrict__ out, int64_t const* __restrict__ keptIndex,
    int32_t const* __restrict__ mDev, int32_t numTokens, int32_t channels)
{
    int32_t const t = blockIdx.x;
    int32_t const b = blockIdx.y;
    int32_t const m = *mDev;
    if (t >= m)
        return;
    int64_t const src = keptIndex[static_cast<int64_t>(b) * numTokens + t];
    // output rows are packed with stride C in an [B, M, C] tensor
    T* to = out + (static_cast<int64_t>(b) * m + t) * channels;
    size_t const bytes = static_cast<size_t>(channels) * sizeof(T);
    if (src < 0) // a padding slot (per-sample vote): zero bytes are 0.0 in every float type
    {
        for (size_t i = threadIdx.x; i < bytes; i += blockDim.x)
            reinterpret_cast<unsigned char*>(to)[i] = 0;
        return;
    }
    T const* from = tokens + (static_cast<int64_t>(b) * numTokens + src) * channels;
    if (bytes % 16 == 0 && reinterpret_cast<uintptr_t>(from) % 16 == 0 && reinterpret_cast<uintptr_t>(to) % 16 == 0)
    {
        int4 const* f4 = reinterpret_cast<int4 const*>(from);
        int4* t4 = reinterpret_cast<int4*>(to);
        for (size_t i = threadIdx.x; i < bytes / 16; i += blockDim.x)
            t4[i] = f4[i];
    }
    else
    {
        for (int32_t c = threadIdx.x; c < channels; c += blockDim.x)
            to[c] = from[c];
    }
}

//! kept_index rows are written with stride N; pack them (and maskOut, when given) to stride M; keptCount = M.
__global__ void packKeptKernel(int64_t const* __restrict__ src, int64_t* __restrict__ dst, int32_t* __restrict__ maskOut,
    int32_t const* __restrict__ mDev, int32_t* __restrict__ keptCount, int32_t numTokens, int32_t batch)
{
    int32_t const m = *mDev;
    if (blockIdx.x == 0 && threadIdx.x == 0)
        *keptCount = m;
    int64_t const total = static_cast<int64_t>(batch) * m;
    for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
         i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    {
        int64_t const b = i / m;
        int64_t const t = i % m;
        dst[i] = src[b * numTokens + t];
        if (maskOut)
            maskOut[i] = dst[i] >= 0 ? 1 : 0;
    }
}

template <typename T>
cudaError_t launchTyped(TokenDropParams const& p, T const* tokens, T const* metric, T* tokensOut, int64_t* keptIndex,
    int32_t* keptCount, Workspace const& w, int64_t* keptScratch, TokenDropMasks masks, cudaStream_t stream)
{
    int32_t const free = p.tokens - p.protectedTokens;
    int32_t const na = free > 0 ? (free + 1) / 2 : 0;
    int32_t* const lens = p.perSample ? w.lens : nullptr;
    int32_t* const votes = p.perSample ? w.sampleVotes : w.votes;
    cudaError_t err = cudaMemsetAsync(w.votes, 0, counterCount(p.batch) * sizeof(int32_t), stream);
    if (err != cudaSuccess)
        return err;
    if (p.perSample)
    {
        lengthsKernel<<<p.batch, 256, 0, stream>>>(masks.mask, w.lens, p.tokens);
        if ((err = cudaGetLastError()) != cudaSuccess)
            return err;
    }
    if (free >= 2)
    {
        int64_t const warps = static_cast<int64_t>(p.batch) * free;
        int32_t const threads = 256;
        int64_t const blocks = (warps * kWarp + threads - 1) / threads;
        normalizeKernel<T><<<static_cast<uint32_t>(blocks), threads, 0, stream>>>(
            metric, w.normed, p.batch, p.tokens, p.dim, p.protectedTokens);
        if ((err = cudaGetLastError()) != cudaSuccess)
            return err;
        dim3 const grid((na + kRowsPerBlock - 1) / kRowsPerBlock, p.batch);
        rowStatsKernel<<<grid, kRowsPerBlock * kWarp, 0, stream>>>(
            w.normed, w.cnt, w.score, votes, lens, free, p.dim, p.threshold, p.k, p.gamma, p.protectedTokens);
        if ((err = cudaGetLastError()) != cudaSuccess)
            return err;
    }
    size_t const smem = static_cast<size_t>(na) * (sizeof(float) + sizeof(int32_t));
    orderKernel<<<p.batch, kOrderThreads, smem, stream>>>(
        w.score, votes, lens, w.r, w.m, keptScratch, p.batch, p.tokens, p.protectedTokens, p.fixedR);
    if ((err = cudaGetLastError()) != cudaSuccess)
        return err;
    packKeptKernel<<<min(1024, (p.batch * p.tokens + 255) / 256), 256, 0, stream>>>(
        keptScratch, keptIndex, masks.maskOut, w.m, keptCount, p.tokens, p.batch);
    if ((err = cudaGetLastError()) != cudaSuccess)
        return err;
    // gather reads the stride-N scratch: index rows t < M of sample b live at b * N + t
    gatherKernel<T><<<dim3(p.tokens, p.batch), 128, 0, stream>>>(tokens, tokensOut, keptScratch, w.m, p.tokens, p.channels);
    return cudaGetLastError();
}

} // namespace

size_t tokenDropWorkspaceSize(int32_t batch, int32_t tokens, int32_t dim) noexcept
{
    size_t const rows = static_cast<size_t>(batch) * tokens;
    return alignUp(rows * dim * sizeof(float)) + alignUp(rows * sizeof(int32_t)) + alignUp(rows * sizeof(float))
        + alignUp(counterCount(batch) * sizeof(int32_t)) + alignUp(rows * sizeof(int64_t));
}

char const* tokenDropCheckParams(TokenDropParams const& p) noexcept
{
    if (p.batch < 1)
        return "batch must be >= 1";
    if (p.tokens < 1 || p.tokens > kMaxTokens)
        return "token count N must be in [1, 8192]";
    if (p.channels < 1)
        return "channels C must be >= 1";
    if (p.dim < 1 || p.dim > kMaxDim)
        return "metric dim D must be in [1, 256]";
    if (!(p.threshold >= -1.f && p.threshold <= 1.f))
        return "threshold must be in [-1, 1]";
    if (p.k < 1)
        return "k must be >= 1";
    if (p.protectedTokens < 0)
        return "protected must be >= 0";
    if (p.fixedR < -1)
        return "fixed_r must be >= -1";
    if (p.perSample != 0 && p.perSample != 1)
        return "per_sample must be 0 or 1";
    return nullptr;
}

cudaError_t tokenDropLaunch(TokenDropParams const& p, DType dtype, void const* tokens, void const* metric, void* tokensOut,
    int64_t* keptIndex, int32_t* keptCount, void* workspace, size_t workspaceBytes, cudaStream_t stream,
    TokenDropMasks masks) noexcept
{
    if (tokenDropCheckParams(p) != nullptr || workspaceBytes < tokenDropWorkspaceSize(p.batch, p.tokens, p.dim)
        || (p.perSample && masks.maskOut == nullptr))
        return cudaErrorInvalidValue;
    Workspace const w = carve(workspace, p.batch, p.tokens, p.dim);
    size_t const rows = static_cast<size_t>(p.batch) * p.tokens;
    char* scratch = static_cast<char*>(workspace) + alignUp(rows * p.dim * sizeof(float)) + alignUp(rows * sizeof(int32_t))
        + alignUp(rows * sizeof(float)) + alignUp(counterCount(p.batch) * sizeof(int32_t));
    int64_t* keptScratch = reinterpret_cast<int64_t*>(scratch);
    switch (dtype)
    {
    case DType::kFLOAT:
        return launchTyped(p, static_cast<float const*>(tokens), static_cast<float const*>(metric),
            static_cast<float*>(tokensOut), keptIndex, keptCount, w, keptScratch, masks, stream);
    case DType::kHALF:
        return launchTyped(p, static_cast<__half const*>(tokens), static_cast<__half const*>(metric),
            static_cast<__half*>(tokensOut), keptIndex, keptCount, w, keptScratch, masks, stream);
    case DType::kBF16:
        return launchTyped(p, static_cast<__nv_bfloat16 const*>(tokens), static_cast<__nv_bfloat16 const*>(metric),
            static_cast<__nv_bfloat16*>(tokensOut), keptIndex, keptCount, w, keptScratch, masks, stream);
    }
    return cudaErrorInvalidValue;
}

} // namespace saint
