/*
 * The tests' emulated libcudart.so for Polygraphy's CUDA wrapper (polygraphy/cuda/cuda.py loads
 * libcudart.so* from LD_LIBRARY_PATH through ctypes): the calls it makes, on host memory, since the
 * emulated TensorRT runs plugins on the CPU runtime (plugins/cuda_cpu), where device memory is host
 * memory. Return values are cudaError_t codes (0 = cudaSuccess, 2 = cudaErrorMemoryAllocation).
 */
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#define EMU_CUDART extern "C" __attribute__((visibility("default")))

EMU_CUDART int cudaMalloc(void** ptr, size_t size)
{
    *ptr = std::aligned_alloc(256, (size + 255) / 256 * 256 + 256);
    return *ptr != nullptr ? 0 : 2;
}

EMU_CUDART int cudaFree(void* ptr)
{
    std::free(ptr);
    return 0;
}

EMU_CUDART int cudaMemcpy(void* dst, void const* src, size_t count, int /*kind*/)
{
    std::memmove(dst, src, count);
    return 0;
}

EMU_CUDART int cudaMemcpyAsync(void* dst, void const* src, size_t count, int kind, void* /*stream*/)
{
    return cudaMemcpy(dst, src, count, kind);
}

EMU_CUDART int cudaStreamCreate(void** stream)
{
    static std::atomic<intptr_t> streams{0};
    *stream = reinterpret_cast<void*>(++streams); // opaque: work runs when enqueued
    return 0;
}

EMU_CUDART int cudaStreamDestroy(void*)
{
    return 0;
}

EMU_CUDART int cudaStreamSynchronize(void*)
{
    return 0;
}

//! One emulated device, so callers that ask the CUDA runtime for a GPU (saint-export does) go on.
EMU_CUDART int cudaGetDeviceCount(int* count)
{
    *count = 1;
    return 0;
}
