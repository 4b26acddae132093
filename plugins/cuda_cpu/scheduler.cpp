/*
 * Runs a kernel launch on the calling host thread: blocks one after another, every CUDA thread of
 * the block a fiber. A fiber runs until it reaches __syncthreads, a warp primitive or its end; then
 * the next runnable thread of the block is resumed. CUDA_CPU_SEED != 0 picks blocks, warps and lanes
 * in a seeded random order and lets one warp run ahead of the others (exposes missing barriers).
 */
#include "cuda_cpu.h"
#include "errors.h"
#include "fiber.h"

#include <algorithm>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#define CUDACPU_ASAN 1
#else
#define CUDACPU_ASAN 0
#endif

namespace cudacpu
{
namespace detail
{

BuiltIns const* current = nullptr;

namespace
{

constexpr unsigned kMaxThreads = 1024;
constexpr unsigned kMaxWarps = kMaxThreads / 32;
constexpr size_t kSharedLimit = 48 * 1024; // static + dynamic per block, without an opt-in attribute
// Shared memory starts as 0xff bytes (NaN floats, -1 ints), like garbage left by an earlier block.
// Without the sanitizer, bytes past each shared allocation hold this poison too and are checked at the
// block's end; with it, every allocation is an exact-size malloc whose overruns ASan reports.
constexpr unsigned char kPoison = 0xff;
constexpr size_t kCanary = CUDACPU_ASAN ? 0 : 256;

enum class State : uint8_t
{
    Runnable,
    Running,
    Barrier,
    Warp, // waiting in a shuffle or __syncwarp
    Exited,
};

struct Thread
{
    BuiltIns ids;
    Fiber fiber;
    State state;
    unsigned linear;
    // the pending warp exchange
    unsigned mask;
    int src;
    uint64_t value;
    uint64_t result;
    char const* what;
};

struct Warp
{
    uint32_t exists;
    uint32_t runnable;
    uint32_t atWarpSync;
    uint32_t atBarrier;
    uint32_t exited;
};

struct Slot
{
    void const* site;
    unsigned char* data;
    size_t bytes;
};

struct Scheduler
{
    Thread threads[kMaxThreads];
    Warp warps[kMaxWarps];
    unsigned count = 0;
    unsigned warpCount = 0;
    unsigned exited = 0;
    unsigned atBarrier = 0;
    Thread* running = nullptr;
    Fiber host;
    Body body{};
    LaunchConfig cfg{};
    uint3 block{};
    uint64_t rng = 0; // 0: warp by warp, lanes in order (CUDA_CPU_SEED unset or 0)
    bool failed = false;
    std::string message;
    std::vector<Slot> slots;
    size_t staticBytes = 0;
    unsigned char* dynamic = nullptr;
    bool dynamicUsed = false;
    bool busy = false;
};

Scheduler* S = nullptr;

uint64_t nextRandom()
{
    // xorshift64*
    S->rng ^= S->rng >> 12;
    S->rng ^= S->rng << 25;
    S->rng ^= S->rng >> 27;
    return S->rng * 2685821657736338717ull;
}

uint64_t mixSeed(uint64_t x)
{
    // splitmix64 finaliser, never 0 for the scheduler's use
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    x ^= x >> 31;
    return x == 0 ? 1 : x;
}

uint64_t seedFromEnvironment()
{
    char const* s = std::getenv("CUDA_CPU_SEED");
    return s != nullptr ? std::strtoull(s, nullptr, 0) : 0;
}

std::string where(Thread const& t)
{
    char buf[160];
    std::snprintf(buf, sizeof(buf), "block (%u,%u,%u) thread (%u,%u,%u) [warp %u lane %u]", S->block.x, S->block.y,
        S->block.z, t.ids.threadIndex.x, t.ids.threadIndex.y, t.ids.threadIndex.z, t.linear / 32, t.linear % 32);
    return buf;
}

std::string format(char const* fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    std::vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    return buf;
}

[[noreturn]] void fail(std::string const& what)
{
    S->failed = true;
    S->message = what;
    fiberSwitch(S->running->fiber, S->host, true);
    std::abort(); // never resumed
}

Thread* pick()
{
    if (S->rng == 0)
    {
        // the running warp's next runnable lane (cyclically), else the next warp with a runnable lane:
        // a warp runs ahead until all its lanes wait at a barrier or exit, and stays in the cache meanwhile
        unsigned w = S->running != nullptr ? S->running->linear / 32 : 0;
        if (S->running != nullptr && S->warps[w].runnable != 0)
        {
            uint32_t const bits = S->warps[w].runnable;
            unsigned const lane = S->running->linear % 32;
            uint32_t const after = lane == 31 ? 0 : bits & (~0u << (lane + 1));
            return &S->threads[w * 32 + __builtin_ctz(after != 0 ? after : bits)];
        }
        for (unsigned i = 0; i < S->warpCount; ++i, w = w + 1 == S->warpCount ? 0 : w + 1)
            if (S->warps[w].runnable != 0)
                return &S->threads[w * 32 + __builtin_ctz(S->warps[w].runnable)];
        return nullptr;
    }
    // seeded: mostly stay with the running warp (warps drift apart), lanes in random order
    uint64_t const r = nextRandom();
    unsigned warp = 0;
    if (S->running != nullptr && S->warps[S->running->linear / 32].runnable != 0 && (r & 15) != 0)
        warp = S->running->linear / 32;
    else
    {
        unsigned candidates[kMaxWarps];
        unsigned n = 0;
        for (unsigned w = 0; w < S->warpCount; ++w)
            if (S->warps[w].runnable != 0)
                candidates[n++] = w;
        if (n == 0)
            return nullptr;
        warp = candidates[(r >> 8) % n];
    }
    // the first runnable lane at or after a random one (cyclically)
    unsigned const from = (r >> 40) & 31;
    uint32_t const bits = S->warps[warp].runnable;
    uint32_t const rotated = from == 0 ? bits : (bits >> from) | (bits << (32 - from));
    return &S->threads[warp * 32 + (__builtin_ctz(rotated) + from) % 32];
}

void makeRunnable(Thread& t)
{
    t.state = State::Runnable;
    S->warps[t.linear / 32].runnable |= 1u << (t.linear % 32);
}

std::string describeWaiting()
{
    std::string s;
    for (unsigned i = 0; i < S->count; ++i)
    {
        Thread const& t = S->threads[i];
        if (t.state == State::Warp && s.size() < 300)
            s += format(" lane %u of warp %u in %s (mask 0x%08x);", t.linear % 32, t.linear / 32, t.what, t.mask);
    }
    return s;
}

//! Switch from the running thread to the next runnable one (or back to the host when the block is done).
void resumeNext(bool runningIsDone)
{
    Thread* const self = S->running;
    Thread* const next = pick();
    if (next == nullptr)
    {
        if (S->exited == S->count)
            fiberSwitch(self->fiber, S->host, runningIsDone);
        else
            fail(format("deadlock in block (%u,%u,%u): %u of %u threads wait at __syncthreads;%s", S->block.x,
                S->block.y, S->block.z, S->atBarrier, S->count, describeWaiting().c_str()));
        return;
    }
    next->state = State::Running;
    S->warps[next->linear / 32].runnable &= ~(1u << (next->linear % 32));
    if (next == self)
        return;
    S->running = next;
    current = &next->ids;
    fiberSwitch(self->fiber, next->fiber, runningIsDone);
}

//! A lane of ``t``'s warp leaves (exits or waits at __syncthreads): no shuffle may be waiting for it.
void checkNoWarpWaiter(Thread const& t, char const* leaving)
{
    Warp const& w = S->warps[t.linear / 32];
    uint32_t const lane = 1u << (t.linear % 32);
    for (uint32_t bits = w.atWarpSync; bits != 0; bits &= bits - 1)
    {
        Thread const& waiter = S->threads[(t.linear / 32) * 32 + __builtin_ctz(bits)];
        if (waiter.mask & lane)
            fail(format("%s: %s with lane %u in its mask (0x%08x), but that lane %s", where(waiter).c_str(),
                waiter.what, t.linear % 32, waiter.mask, leaving));
    }
}

void releaseBarrierIfComplete()
{
    if (S->atBarrier == 0 || S->atBarrier + S->exited != S->count)
        return;
    for (unsigned w = 0; w < S->warpCount; ++w)
    {
        for (uint32_t bits = S->warps[w].atBarrier; bits != 0; bits &= bits - 1)
            makeRunnable(S->threads[w * 32 + __builtin_ctz(bits)]);
        S->warps[w].atBarrier = 0;
    }
    S->atBarrier = 0;
}

void threadMain(void*)
{
    fiberStarted();
    S->body.call(S->body.object);
    Thread& t = *S->running;
    t.state = State::Exited;
    S->exited++;
    S->warps[t.linear / 32].exited |= 1u << (t.linear % 32);
    checkNoWarpWaiter(t, "has exited");
    releaseBarrierIfComplete(); // exited threads count as arrived, as on the hardware
    resumeNext(true);
    std::abort(); // an exited fiber is never resumed
}

void freeShared()
{
    for (Slot const& s : S->slots)
    {
        for (size_t i = 0; i < kCanary; ++i)
            if (!S->failed && s.data[s.bytes + i] != kPoison)
            {
                S->failed = true;
                S->message = format("block (%u,%u,%u) wrote past the end of a %zu-byte __shared__ array", S->block.x,
                    S->block.y, S->block.z, s.bytes);
                break;
            }
        std::free(s.data);
    }
    S->slots.clear();
    S->staticBytes = 0;
    if (S->dynamicUsed && !S->failed)
    {
        size_t const end = CUDACPU_ASAN ? S->cfg.dynamicShared : kSharedLimit;
        for (size_t i = S->cfg.dynamicShared; i < end; ++i)
            if (S->dynamic[i] != kPoison)
            {
                S->failed = true;
                S->message = format("block (%u,%u,%u) wrote byte %zu of dynamic shared memory, but the launch "
                                    "requested %zu bytes",
                    S->block.x, S->block.y, S->block.z, i, S->cfg.dynamicShared);
                break;
            }
    }
    if (CUDACPU_ASAN)
    {
        std::free(S->dynamic);
        S->dynamic = nullptr;
    }
}

void runBlock(uint3 block)
{
    S->block = block;
    S->exited = 0;
    S->atBarrier = 0;
    S->failed = false;
    S->dynamicUsed = false;
    if (CUDACPU_ASAN)
        S->dynamic = static_cast<unsigned char*>(std::malloc(S->cfg.dynamicShared > 0 ? S->cfg.dynamicShared : 1));
    std::memset(S->dynamic, kPoison, CUDACPU_ASAN ? S->cfg.dynamicShared : kSharedLimit);
    for (unsigned w = 0; w < S->warpCount; ++w)
    {
        unsigned const lanes = std::min(32u, S->count - w * 32);
        uint32_t const exists = lanes == 32 ? ~0u : (1u << lanes) - 1u;
        S->warps[w] = Warp{exists, exists, 0, 0, 0};
    }
    dim3 const bd = S->cfg.block;
    for (unsigned i = 0; i < S->count; ++i)
    {
        Thread& t = S->threads[i];
        t.linear = i;
        t.state = State::Runnable;
        t.ids = BuiltIns{uint3{i % bd.x, (i / bd.x) % bd.y, i / (bd.x * bd.y)}, block, bd, S->cfg.grid};
        fiberPrepare(t.fiber, threadMain, &t);
    }
    S->running = nullptr;
    Thread* first = pick();
    first->state = State::Running;
    S->warps[first->linear / 32].runnable &= ~(1u << (first->linear % 32));
    S->running = first;
    current = &first->ids;
    fiberSwitch(S->host, first->fiber);
    current = nullptr;
    freeShared();
}

} // namespace

void syncThreads()
{
    Thread& t = *S->running;
    t.state = State::Barrier;
    S->atBarrier++;
    S->warps[t.linear / 32].atBarrier |= 1u << (t.linear % 32);
    checkNoWarpWaiter(t, "waits at __syncthreads");
    releaseBarrierIfComplete();
    resumeNext(false);
}

uint64_t warpExchange(unsigned mask, uint64_t value, int srcLane, char const* what)
{
    Thread& t = *S->running;
    unsigned const warpIndex = t.linear / 32;
    Warp& w = S->warps[warpIndex];
    uint32_t const lane = 1u << (t.linear % 32);
    t.what = what;
    t.mask = mask;
    t.value = value;
    t.src = srcLane < 0 ? static_cast<int>(t.linear % 32) : srcLane;
    if (!(mask & lane))
        fail(format("%s: %s with mask 0x%08x that does not include the calling lane", where(t).c_str(), what, mask));
    auto lanesOf = [](uint32_t bits) {
        std::string s;
        for (; bits != 0; bits &= bits - 1)
            s += format("%s%d", s.empty() ? "" : ",", __builtin_ctz(bits));
        return s;
    };
    if (mask & ~w.exists)
        fail(format("%s: %s with mask 0x%08x names lanes %s, which the block (%u threads) does not have",
            where(t).c_str(), what, mask, lanesOf(mask & ~w.exists).c_str(), S->count));
    if (mask & w.exited)
        fail(format("%s: %s with mask 0x%08x waits for lanes %s, which have exited", where(t).c_str(), what, mask,
            lanesOf(mask & w.exited).c_str()));
    if (mask & w.atBarrier)
        fail(format("%s: %s with mask 0x%08x waits for lanes %s, which wait at __syncthreads", where(t).c_str(), what,
            mask, lanesOf(mask & w.atBarrier).c_str()));
    t.state = State::Warp;
    w.atWarpSync |= lane;
    if ((w.atWarpSync & mask) == mask)
    {
        for (uint32_t bits = mask; bits != 0; bits &= bits - 1)
        {
            Thread& peer = S->threads[warpIndex * 32 + __builtin_ctz(bits)];
            if (peer.mask != mask)
                fail(format("%s: %s with mask 0x%08x meets lane %u in %s with mask 0x%08x", where(t).c_str(), what,
                    mask, peer.linear % 32, peer.what, peer.mask));
            if (peer.src < 0 || peer.src >= 32 || !(mask & (1u << peer.src)))
                fail(format("%s: %s reads lane %d, which is not in the mask 0x%08x", where(peer).c_str(), peer.what,
                    peer.src, mask));
        }
        for (uint32_t bits = mask; bits != 0; bits &= bits - 1)
        {
            Thread& peer = S->threads[warpIndex * 32 + __builtin_ctz(bits)];
            peer.result = S->threads[warpIndex * 32 + peer.src].value;
            makeRunnable(peer);
        }
        w.atWarpSync &= ~mask;
    }
    resumeNext(false);
    return t.result;
}

void* sharedSlot(void const* site, size_t bytes, size_t align)
{
    for (Slot const& s : S->slots)
        if (s.site == site)
            return s.data;
    if (S->staticBytes + bytes + S->cfg.dynamicShared > kSharedLimit)
        fail(format("block (%u,%u,%u): %zu bytes of __shared__ arrays plus %zu dynamic exceed %zu", S->block.x,
            S->block.y, S->block.z, S->staticBytes + bytes, S->cfg.dynamicShared, kSharedLimit));
    size_t const total = (bytes + kCanary + align - 1) / align * align;
    auto* data = static_cast<unsigned char*>(std::aligned_alloc(std::max<size_t>(align, 16), std::max<size_t>(total, 16)));
    std::memset(data, kPoison, bytes + kCanary);
    S->slots.push_back(Slot{site, data, bytes});
    S->staticBytes += bytes;
    return data;
}

void* dynamicShared()
{
    S->dynamicUsed = true;
    return S->dynamic;
}

void run(LaunchConfig const& cfg, Body body)
{
    if (S == nullptr)
    {
        S = new Scheduler;
        S->dynamic = CUDACPU_ASAN ? nullptr : static_cast<unsigned char*>(std::aligned_alloc(256, kSharedLimit));
    }
    if (S->busy)
    {
        recordError(cudaErrorNotSupported, "cuda_cpu: a kernel launched a kernel (not supported)");
        return;
    }
    dim3 const g = cfg.grid;
    dim3 const b = cfg.block;
    uint64_t const threads = uint64_t(b.x) * b.y * b.z;
    if (threads == 0 || threads > kMaxThreads || b.x > 1024 || b.y > 1024 || b.z > 64 || g.x == 0 || g.y == 0
        || g.z == 0 || g.x > 2147483647u || g.y > 65535 || g.z > 65535)
    {
        recordError(cudaErrorInvalidConfiguration,
            format("cuda_cpu: invalid launch configuration grid (%u,%u,%u) block (%u,%u,%u)", g.x, g.y, g.z, b.x, b.y,
                b.z));
        return;
    }
    if (cfg.dynamicShared > kSharedLimit)
    {
        recordError(cudaErrorInvalidValue,
            format("cuda_cpu: %zu bytes of dynamic shared memory exceed the %zu-byte limit", cfg.dynamicShared,
                kSharedLimit));
        return;
    }
    S->busy = true;
    S->cfg = cfg;
    S->body = body;
    S->count = static_cast<unsigned>(threads);
    S->warpCount = (S->count + 31) / 32;
    fiberAdoptHostThread(S->host);
    uint64_t const seed = seedFromEnvironment();
    uint64_t const blocks = uint64_t(g.x) * g.y * g.z;
    std::vector<uint64_t> order;
    if (seed != 0 && blocks <= (1u << 24))
    {
        order.resize(blocks);
        for (uint64_t i = 0; i < blocks; ++i)
            order[i] = i;
        S->rng = mixSeed(seed ^ (blocks << 20));
        for (uint64_t i = blocks; i > 1; --i)
            std::swap(order[i - 1], order[nextRandom() % i]);
    }
    for (uint64_t i = 0; i < blocks; ++i)
    {
        uint64_t const id = order.empty() ? i : order[i];
        S->rng = seed == 0 ? 0 : mixSeed(seed * 0x100000001b3ull + id);
        runBlock(uint3{static_cast<unsigned>(id % g.x), static_cast<unsigned>(id / g.x % g.y),
            static_cast<unsigned>(id / (uint64_t(g.x) * g.y))});
        if (S->failed)
        {
            recordError(cudaErrorLaunchFailure, "cuda_cpu: " + S->message);
            break;
        }
    }
    S->busy = false;
}

} // namespace detail
} // namespace cudacpu
