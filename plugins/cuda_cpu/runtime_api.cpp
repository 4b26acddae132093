/*
 * The cuda* runtime calls the kernels and the harness use, on host memory. Work on a stream runs
 * when it is enqueued, so every stream is always idle and synchronising is a no-op.
 */
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

// Hidden, so the library's own calls bind here even when a process (torch) has loaded the real libcudart.
#pragma GCC visibility push(hidden)
#include "errors.h"

namespace cudacpu
{
namespace detail
{
namespace
{
cudaError_t pending = cudaSuccess; // what cudaGetLastError returns next
cudaError_t detailedCode = cudaSuccess;
std::string detailed; // the message of the latest recorded error
} // namespace

void recordError(cudaError_t code, std::string const& message)
{
    std::fprintf(stderr, "%s\n", message.c_str());
    if (pending == cudaSuccess)
        pending = code;
    detailedCode = code;
    detailed = message;
}

} // namespace detail
} // namespace cudacpu

using cudacpu::detail::pending;

cudaError_t cudaGetLastError()
{
    cudaError_t const e = pending;
    pending = cudaSuccess;
    return e;
}

cudaError_t cudaPeekAtLastError()
{
    return pending;
}

char const* cudaGetErrorName(cudaError_t error)
{
    switch (error)
    {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorLaunchFailure: return "cudaErrorLaunchFailure";
    case cudaErrorNotSupported: return "cudaErrorNotSupported";
    default: return "cudaErrorUnknown";
    }
}

//! The runtime's own message (naming block, thread and cause) for the latest error of that code.
char const* cudaGetErrorString(cudaError_t error)
{
    if (error != cudaSuccess && error == cudacpu::detail::detailedCode)
        return cudacpu::detail::detailed.c_str();
    switch (error)
    {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorLaunchFailure: return "unspecified launch failure";
    case cudaErrorNotSupported: return "operation not supported";
    default: return "unknown error";
    }
}

cudaError_t cudaMalloc(void** devPtr, size_t size)
{
    *devPtr = std::aligned_alloc(256, (size + 255) / 256 * 256);
    return *devPtr != nullptr || size == 0 ? cudaSuccess : cudaErrorMemoryAllocation;
}

cudaError_t cudaFree(void* devPtr)
{
    std::free(devPtr);
    return cudaSuccess;
}

cudaError_t cudaMemset(void* devPtr, int value, size_t count)
{
    std::memset(devPtr, value, count);
    return cudaSuccess;
}

cudaError_t cudaMemsetAsync(void* devPtr, int value, size_t count, cudaStream_t)
{
    return cudaMemset(devPtr, value, count);
}

cudaError_t cudaMemcpy(void* dst, void const* src, size_t count, cudaMemcpyKind)
{
    std::memmove(dst, src, count);
    return cudaSuccess;
}

cudaError_t cudaMemcpyAsync(void* dst, void const* src, size_t count, cudaMemcpyKind kind, cudaStream_t)
{
    return cudaMemcpy(dst, src, count, kind);
}

cudaError_t cudaStreamCreate(cudaStream_t* stream)
{
    static int streams = 0;
    *stream = reinterpret_cast<cudaStream_t>(static_cast<intptr_t>(++streams)); // an opaque, never dereferenced
    return cudaSuccess;
}

cudaError_t cudaStreamDestroy(cudaStream_t)
{
    return cudaSuccess;
}

cudaError_t cudaStreamSynchronize(cudaStream_t)
{
    return cudaSuccess;
}

cudaError_t cudaDeviceSynchronize()
{
    return cudaSuccess;
}

#pragma GCC visibility pop
