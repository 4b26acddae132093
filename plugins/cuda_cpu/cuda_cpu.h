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

template <typename T>
T __shfl_sync(unsigned mask, T var, int srcLane, int width = warpSize)
{
    int const lane = ::cudacpu::detail::laneId();
    int const src = (lane & ~(width - 1)) + (srcLane & (width - 1));
    return ::cudacpu::detail::fromBits<T>(
        ::cudacpu::detail::warpExchange(mask, ::cudacpu::detail::toBits(var), src, "__shfl_sync"));
}

template <typename T>
T __shfl_xor_sync(unsigned mask, T var, int laneMask, int width = warpSize)
{
    int const lane = ::cudacpu::detail::laneId();
    int src = lane ^ laneMask;
    if (src >= (lane & ~(width - 1)) + width) // later groups read back their own value
        src = lane;
    return ::cudacpu::detail::fromBits<T>(
        ::cudacpu::detail::warpExchange(mask, ::cudacpu::detail::toBits(var), src, "__shfl_xor_sync"));
}

template <typename T>
T __shfl_down_sync(unsigned mask, T var, unsigned delta, int width = warpSize)
{
    int const lane = ::cudacpu::detail::laneId();
    int src = lane + static_cast<int>(delta);
    if (src >= (lane & ~(width - 1)) + width)
        src = lane;
    return ::cudacpu::detail::fromBits<T>(
        ::cudacpu::detail::warpExchange(mask, ::cudacpu::detail::toBits(var), src, "__shfl_down_sync"));
}

template <typename T>
T __shfl_up_sync(unsigned mask, T var, unsigned delta, int width = warpSize)
{
    int const lane = ::cudacpu::detail::laneId();
    int src = lane - static_cast<int>(delta);
    if (src < (lane & ~(width - 1)))
        src = lane;
    return ::cudacpu::detail::fromBits<T>(
        ::cudacpu::detail::warpExchange(mask, ::cudacpu::detail::toBits(var), src, "__shfl_up_sync"));
}

// Threads of a block never run in parallel here (one fiber at a time), so plain read-modify-write is atomic.
template <typename T>
T atomicAdd(T* address, T val)
{
    T const old = *address;
    *address = old + val;
    return old;
}

template <typename T>
T atomicSub(T* address, T val)
{
    T const old = *address;
    *address = old - val;
    return old;
}

template <typename T>
T atomicMax(T* address, T val)
{
    T const old = *address;
    *address = old < val ? val : old;
    return old;
}

template <typename T>
T atomicMin(T* address, T val)
{
    T const old = *address;
    *address = val < old ? val : old;
    return old;
}

template <typename T>
T atomicExch(T* address, T val)
{
    T const old = *address;
    *address = val;
    return old;
}

template <typename T>
T atomicCAS(T* address, T compare, T val)
{
    T const old = *address;
    if (old == compare)
        *address = val;
    return old;
}

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
