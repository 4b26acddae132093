/*
 * The device-side half of the CPU CUDA runtime: what kernel code sees after cu2cpp.py rewrote it.
 * Built-in variables, barriers, warp shuffles, atomics, __shared__ storage and the launch.
 * Semantics and limits: README.md next to this file.
 */
#pragma once

// empty execution-space keywords; host_defines.h keeps a definition it finds
#define __global__
#define __device__
#define __host__
#define __shared__
#define __constant__
#define __launch_bounds__(...)

#include <cuda_runtime_api.h> // dim3, uint3, int4, cudaError_t, cudaStream_t: the real CUDA types

#include <cmath>
#include <cstdint>
#include <cstring>
#include <tuple>
#include <type_traits>
#include <utility>

namespace cudacpu
{

struct LaunchConfig
{
    dim3 grid;
    dim3 block;
    size_t dynamicShared;
    cudaStream_t stream;
};

inline LaunchConfig config(dim3 grid, dim3 block, size_t dynamicShared = 0, cudaStream_t stream = nullptr)
{
    return LaunchConfig{grid, block, dynamicShared, stream};
}

//! What the built-in variables read for the running CUDA thread.
struct BuiltIns
{
    uint3 threadIndex;
    uint3 blockIndex;
    dim3 blockDimension;
    dim3 gridDimension;
};

namespace detail
{

// hidden: the library's own code reaches these directly, without the PLT or GOT, on every thread switch
#pragma GCC visibility push(hidden)
extern BuiltIns const* current; // switched with the running fiber

//! Type-erased kernel body: each CUDA thread calls call(object).
struct Body
{
    void* object;
    void (*call)(void*);
};

void run(LaunchConfig const& cfg, Body body);
uint64_t warpExchange(unsigned mask, uint64_t value, int srcLane, char const* what);
void* sharedSlot(void const* site, size_t bytes, size_t align);
void* dynamicShared();
void syncThreads();
#pragma GCC visibility pop

template <typename T>
uint64_t toBits(T v)
{
    static_assert(sizeof(T) <= sizeof(uint64_t) && std::is_trivially_copyable<T>::value, "shuffle of a type over 8 bytes");
    uint64_t bits = 0;
    std::memcpy(&bits, &v, sizeof(T));
    return bits;
}

template <typename T>
T fromBits(uint64_t bits)
{
    T v;
    std::memcpy(&v, &bits, sizeof(T));
    return v;
}

inline int laneId()
{
    uint3 const t = current->threadIndex;
    dim3 const d = current->blockDimension;
    return static_cast<int>((t.x + d.x * (t.y + d.y * t.z)) % 32);
}

} // namespace detail

//! The kernel's parameters are converted and copied once, like CUDA's argument buffer; every thread
//! then calls the kernel with its own copy of them.
template <typename... P, typename... A>
void launch(LaunchConfig const& cfg, void (*kernel)(P...), A&&... args)
{
    std::tuple<std::decay_t<P>...> params(std::forward<A>(args)...);
    auto call = [&params, kernel]() { std::apply(kernel, params); };
    detail::run(cfg, detail::Body{&call, [](void* f) { (*static_cast<decltype(call)*>(f))(); }});
}

} // namespace cudacpu

// built-in variables of the running CUDA thread
#define threadIdx (::cudacpu::detail::current->threadIndex)
#define blockIdx (::cudacpu::detail::current->blockIndex)
#define blockDim (::cudacpu::detail::current->blockDimension)
#define gridDim (::cudacpu::detail::current->gridDimension)
constexpr int warpSize = 32;

// cu2cpp.py turns `__shared__ T name[dims];` into CUDACPU_SHARED(T, name, [dims]) and
// `extern __shared__ T name[];` into CUDACPU_EXTERN_SHARED(T, name): one copy per block.
#define CUDACPU_SHARED(T, name, dims)                                                                                  \
    using name##_cudacpu_type = T dims;                                                                                \
    static char const name##_cudacpu_site = 0;                                                                         \
    name##_cudacpu_type& name = *static_cast<name##_cudacpu_type*>(                                                    \
        ::cudacpu::detail::sharedSlot(&name##_cudacpu_site, sizeof(name##_cudacpu_type), alignof(name##_cudacpu_type)))
#define CUDACPU_EXTERN_SHARED(T, name) T* const name = static_cast<T*>(::cudacpu::detail::dynamicShared())

inline void __syncthreads()
{
    ::cudacpu::detail::syncThreads();
}

inline void __syncwarp(unsigned mask = 0xffffffffu)
{
    ::cudacpu::detail::warpExchange(mask, 0, -1, "__syncwarp");
}

inline void __threadfence() {}
inline void __threadfence_block() {}

namespace cudacpu::detail
{
//! ``var`` of lane ``src`` of this warp. As in CUDA, a lane may read earlier groups of ``width`` lanes,
//! but a source in a later group than its own reads its own value.
template <typename T>
T shuffleFrom(unsigned mask, T var, int src, int width, char const* what)
{
    int const lane = laneId();
    return fromBits<T>(warpExchange(mask, toBits(var), src < (lane & ~(width - 1)) + width ? src : lane, what));
}
} // namespace cudacpu::detail

template <typename T>
T __shfl_sync(unsigned mask, T var, int srcLane, int width = warpSize)
{
    int const group = ::cudacpu::detail::laneId() & ~(width - 1);
    return ::cudacpu::detail::shuffleFrom(mask, var, group + (srcLane & (width - 1)), width, "__shfl_sync");
}

template <typename T>
T __shfl_xor_sync(unsigned mask, T var, int laneMask, int width = warpSize)
{
    return ::cudacpu::detail::shuffleFrom(mask, var, ::cudacpu::detail::laneId() ^ laneMask, width, "__shfl_xor_sync");
}

template <typename T>
T __shfl_down_sync(unsigned mask, T var, unsigned delta, int width = warpSize)
{
    int const src = ::cudacpu::detail::laneId() + static_cast<int>(delta);
    return ::cudacpu::detail::shuffleFrom(mask, var, src, width, "__shfl_down_sync");
}

template <typename T>
T __shfl_up_sync(unsigned mask, T var, unsigned delta, int width = warpSize)
{
    int const lane = ::cudacpu::detail::laneId(), src = lane - static_cast<int>(delta);
    return ::cudacpu::detail::shuffleFrom(mask, var, src < (lane & ~(width - 1)) ? lane : src, width, "__shfl_up_sync");
}

// Threads of a block never run in parallel here (one fiber at a time), so plain read-modify-write is atomic.
namespace cudacpu::detail
{
template <typename T, typename F>
T readModifyWrite(T* address, F update)
{
    T const old = *address;
    *address = update(old);
    return old;
}
} // namespace cudacpu::detail

template <typename T> T atomicAdd(T* a, T v) { return ::cudacpu::detail::readModifyWrite(a, [v](T o) { return T(o + v); }); }
template <typename T> T atomicSub(T* a, T v) { return ::cudacpu::detail::readModifyWrite(a, [v](T o) { return T(o - v); }); }
template <typename T> T atomicMax(T* a, T v) { return ::cudacpu::detail::readModifyWrite(a, [v](T o) { return o < v ? v : o; }); }
template <typename T> T atomicMin(T* a, T v) { return ::cudacpu::detail::readModifyWrite(a, [v](T o) { return v < o ? v : o; }); }
template <typename T> T atomicExch(T* a, T v) { return ::cudacpu::detail::readModifyWrite(a, [v](T) { return v; }); }
template <typename T> T atomicCAS(T* a, T c, T v) { return ::cudacpu::detail::readModifyWrite(a, [c, v](T o) { return o == c ? v : o; }); }

// CUDA's device min/max accept mixed integer types
template <typename A, typename B>
std::common_type_t<A, B> min(A a, B b)
{
    return b < a ? b : a;
}

template <typename A, typename B>
std::common_type_t<A, B> max(A a, B b)
{
    return a < b ? b : a;
}
