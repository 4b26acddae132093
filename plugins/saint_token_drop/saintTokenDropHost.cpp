#include "saintTokenDropHost.h"
#include "saintTokenDropMath.cuh"

#include <algorithm>
#include <cstring>
#include <exception>
#include <vector>

namespace saint
{

char const* tokenDropHost(TokenDropParams const& p, float const* tokens, float const* metric, float* tokensOut,
    int64_t* keptIndex, int64_t* keptCount) noexcept
{
    if (char const* bad = tokenDropCheckParams(p))
        return bad;
    try
    {
        int32_t const freeTokens = p.tokens - p.protectedTokens;
        int32_t const na = freeTokens > 0 ? (freeTokens + 1) / 2 : 0;
        int32_t const nb = freeTokens > 0 ? freeTokens / 2 : 0;
        int32_t const d = p.dim;
        std::vector<float> normed(static_cast<size_t>(std::max(freeTokens, 0)) * d);
        std::vector<float> score(static_cast<size_t>(p.batch) * na);
        int32_t votes = 0;
        for (int32_t b = 0; b < p.batch && freeTokens >= 2; ++b)
        {
            // normalizeKernel
            for (int32_t t = 0; t < freeTokens; ++t)
            {
                float const* src = metric + (static_cast<int64_t>(b) * p.tokens + p.protectedTokens + t) * d;
                float ss = 0.f;
                for (int32_t k = 0; k < d; ++k)
                    ss += src[k] * src[k];
                float const norm = std::max(std::sqrt(ss), 1e-12f);
                for (int32_t k = 0; k < d; ++k)
                    normed[static_cast<size_t>(t) * d + k] = src[k] / norm;
            }
            // rowStatsKernel
            for (int32_t i = 0; i < na; ++i)
            {
                float const* a = &normed[static_cast<size_t>(2 * i) * d];
                int32_t count = 0;
                float sumValid = 0.f, sumAll = 0.f;
                for (int32_t j = 0; j < nb; ++j)
                {
                    float const* bj = &normed[static_cast<size_t>(2 * j + 1) * d];
                    float s = 0.f;
                    for (int32_t k = 0; k < d; ++k)
                        s += a[k] * bj[k];
                    sumAll += s;
                    if (s >= p.threshold)
                    {
                        ++count;
                        sumValid += s;
                    }
                }
                score[static_cast<size_t>(b) * na + i] = rowScore(count, sumValid, sumAll, nb, p.threshold, p.gamma);
                votes += count >= p.k;
            }
        }
        // orderKernel + packKeptKernel + gatherKernel
        int32_t const r = voteR(votes, p.batch, p.fixedR, na, freeTokens);
        int32_t const m = p.tokens - r;
        *keptCount = m;
        std::vector<int32_t> order(static_cast<size_t>(na));
        for (int32_t b = 0; b < p.batch; ++b)
        {
            int64_t* kept = keptIndex + static_cast<int64_t>(b) * m;
            if (r == 0)
            {
                for (int32_t t = 0; t < m; ++t)
                    kept[t] = t;
            }
            else
            {
                float const* s = &score[static_cast<size_t>(b) * na];
                for (int32_t i = 0; i < na; ++i)
                    order[static_cast<size_t>(stableDescendingRank(s, na, i))] = i;
                for (int32_t t = 0; t < m; ++t)
                    kept[t] = keptPosition(t, p.protectedTokens, na - r, r, order.data());
            }
            for (int32_t t = 0; t < m; ++t)
                std::memcpy(tokensOut + (static_cast<int64_t>(b) * m + t) * p.channels,
                    tokens + (static_cast<int64_t>(b) * p.tokens + kept[t]) * p.channels, sizeof(float) * p.channels);
        }
        return nullptr;
    }
    catch (std::exception const&)
    {
        return "host twin: out of memory";
    }
}

} // namespace saint
