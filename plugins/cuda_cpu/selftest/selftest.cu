/*
 * Kernels that exercise one runtime rule each; cuda_cpu_selftest(which, out) launches one and
 * returns the cudaError_t of the launch (0 = success). out holds at least 1024 ints.
 */
#include <cuda_runtime_api.h>

namespace
{

constexpr unsigned kFull = 0xffffffffu;

//! Block sum of threadIdx.x: warp shuffles, one shared slot per warp, a barrier, an atomic per block.
__global__ void blockSum(int* out)
{
    __shared__ int partial[32];
    int v = static_cast<int>(threadIdx.x);
    for (int o = 16; o > 0; o /= 2)
        v += __shfl_xor_sync(kFull, v, o);
    if (threadIdx.x % 32 == 0)
        partial[threadIdx.x / 32] = v;
    __syncthreads();
    if (threadIdx.x == 0)
    {
        int s = 0;
        for (unsigned w = 0; w < blockDim.x / 32; ++w)
            s += partial[w];
        atomicAdd(out, s);
    }
}

//! lane l writes what each shuffle flavour returns, 32 values per flavour
__global__ void shuffleFlavours(int* out)
{
    int const lane = static_cast<int>(threadIdx.x);
    out[lane] = __shfl_down_sync(kFull, lane, 3);
    out[32 + lane] = __shfl_up_sync(kFull, lane, 3);
    out[64 + lane] = __shfl_sync(kFull, lane, 5, 8);
    out[96 + lane] = __shfl_xor_sync(kFull, lane, 9, 16);
    out[128 + lane] = __shfl_xor_sync(kFull, lane, 16, 8); // earlier groups readable, later ones not
}

//! threads >= 64 exit before the barrier: they count as arrived
__global__ void exitBeforeBarrier(int* out)
{
    if (threadIdx.x >= 64)
        return;
    out[threadIdx.x] = 1;
    __syncthreads();
    int const next = out[(threadIdx.x + 1) % 64];
    __syncthreads();
    out[threadIdx.x] += next;
}

__global__ void shuffleAfterLaneExit(int* out)
{
    if (threadIdx.x == 5)
        return;
    out[threadIdx.x] = __shfl_xor_sync(kFull, 1, 1);
}

__global__ void shuffleAgainstBarrier(int* out)
{
    if (threadIdx.x < 16)
        out[threadIdx.x] = __shfl_sync(kFull, 1, 0);
    else
        __syncthreads();
}

__global__ void partialMask(int* out)
{
    // only the lower half shuffles, with a mask naming just those lanes: fine
    if (threadIdx.x < 16)
        out[threadIdx.x] = __shfl_xor_sync(0x0000ffffu, static_cast<int>(threadIdx.x), 1);
}

__global__ void dynamicOverrun(int* out)
{
    extern __shared__ int words[];
    words[threadIdx.x] = 1; // one int per thread, but the launch asks for fewer bytes
    out[0] = 0;
}

__global__ void nothing(int*) {}

} // namespace

extern "C" int cuda_cpu_selftest(int which, int* out)
{
    switch (which)
    {
    case 0: blockSum<<<3, 256>>>(out); break;
    case 1: shuffleFlavours<<<1, 32>>>(out); break;
    case 2: exitBeforeBarrier<<<1, 128>>>(out); break;
    case 3: shuffleAfterLaneExit<<<1, 32>>>(out); break;
    case 4: shuffleAgainstBarrier<<<1, 32>>>(out); break;
    case 5: partialMask<<<1, 32>>>(out); break;
    case 6: dynamicOverrun<<<1, 64, 32 * sizeof(int)>>>(out); break;
    case 7: nothing<<<1, 2048>>>(out); break;
    case 8: nothing<<<dim3(1, 70000), 32>>>(out); break;
    case 9: nothing<<<1, 32, 64 * 1024>>>(out); break;
    default: return -1;
    }
    return static_cast<int>(cudaGetLastError());
}

extern "C" char const* cuda_cpu_selftest_error(int code)
{
    return cudaGetErrorString(static_cast<cudaError_t>(code));
}
