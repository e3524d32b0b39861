// The CUDA launch model on the CPU, for running kernels/pgf/pgf_kernel.cu's own code (index
// arithmetic, paired loads, tails, shared-memory staging, the grid over N) without a GPU.
//
// Force-included (-include) when the kernel source is compiled as C++ with
// TDPCR_CPU_EMULATION defined. Every thread of a block is a real std::thread, so each keeps
// its own registers and control flow, and __syncthreads() is a real barrier across them;
// blocks run one after another, sharing one buffer as their shared memory. CUDA's host
// headers give the types (dim3, float2, __half, __half2) and their host-side conversions.
// What it cannot show: timing, memory coalescing, warp-level behaviour, and anything the
// hardware would do differently from a sequentially consistent CPU.
#pragma once

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <condition_variable>
#include <cstddef>
#include <cstdio>
#include <mutex>
#include <thread>
#include <vector>

// CUDA's host headers define these as attributes the host compiler ignores or rejects.
#undef __global__
#undef __device__
#undef __host__
#undef __forceinline__
#undef __launch_bounds__
#undef __shared__
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__

// nvcc's cuda_runtime.h adds this overload for kernel pointers; a host compile lacks it.
template <typename T>
inline cudaError_t cudaFuncSetAttribute(T* entry, cudaFuncAttribute attr, int value)
{
    return ::cudaFuncSetAttribute(reinterpret_cast<const void*>(entry), attr, value);
}

namespace tdpcr_emu
{

class Barrier
{
public:
    explicit Barrier(unsigned count)
        : mCount(count)
    {
    }
    void wait()
    {
        std::unique_lock<std::mutex> lock(mMutex);
        unsigned const generation = mGeneration;
        if (++mArrived == mCount)
        {
            mArrived = 0;
            ++mGeneration;
            mCv.notify_all();
            return;
        }
        mCv.wait(lock, [&] { return generation != mGeneration; });
    }

private:
    std::mutex mMutex;
    std::condition_variable mCv;
    unsigned mCount;
    unsigned mArrived{0};
    unsigned mGeneration{0};
};

inline thread_local dim3 tThreadIdx;
inline thread_local dim3 tBlockIdx;
inline thread_local dim3 tBlockDim;
inline thread_local dim3 tGridDim;
inline thread_local Barrier* tBarrier = nullptr;

constexpr size_t kSharedBytes = 256 * 1024;
inline size_t gLastSharedRequest = 0;

// A launch: grid.x * grid.y blocks of block.x threads (1-D blocks, as the kernel uses).
struct Launch
{
    dim3 grid;
    dim3 block;
    size_t sharedBytes;

    template <typename Kernel, typename... Args>
    void operator()(Kernel kernel, Args... args) const
    {
        gLastSharedRequest = sharedBytes;
        if (sharedBytes > kSharedBytes)
        {
            std::fprintf(stderr, "emulated launch asks %zu bytes of shared memory, more than the %zu emulated\n", sharedBytes, kSharedBytes);
            return;
        }
        // One std::thread per thread of a block, walking the blocks together; a barrier at the
        // end of each block keeps the next block from staging its shared memory while this one
        // still reads it. CUDA requires every thread of a block to reach the same barriers, so
        // the extra one changes nothing a correct kernel can observe.
        Barrier barrier(block.x);
        std::vector<std::thread> threads;
        threads.reserve(block.x);
        for (unsigned tx = 0; tx < block.x; ++tx)
        {
            threads.emplace_back([&, tx] {
                tThreadIdx = dim3(tx, 0, 0);
                tBlockDim = block;
                tGridDim = grid;
                tBarrier = &barrier;
                for (unsigned by = 0; by < grid.y; ++by)
                {
                    for (unsigned bx = 0; bx < grid.x; ++bx)
                    {
                        tBlockIdx = dim3(bx, by, 0);
                        kernel(args...);
                        barrier.wait();
                    }
                }
            });
        }
        for (auto& t : threads)
        {
            t.join();
        }
    }
};

template <typename T>
inline T ldg(T const* p)
{
    return *p;
}

} // namespace tdpcr_emu

// The kernel's `extern __shared__ float smem[]` names this buffer (the kernel's unnamed
// namespace is this translation unit's): one block's shared memory at a time.
namespace
{
alignas(16) float smem[::tdpcr_emu::kSharedBytes / sizeof(float)];
}

#define threadIdx (::tdpcr_emu::tThreadIdx)
#define blockIdx (::tdpcr_emu::tBlockIdx)
#define blockDim (::tdpcr_emu::tBlockDim)
#define gridDim (::tdpcr_emu::tGridDim)
#define __syncthreads() (::tdpcr_emu::tBarrier->wait())
#define __ldg(p) (::tdpcr_emu::ldg(p))
// kernel<<<grid, block, shared, stream>>>(args) becomes Launch{grid, block, shared}(kernel, args).
#define TDPCR_LAUNCH(kernel, grid, block, shared, stream, ...)                                                         \
    ::tdpcr_emu::Launch{dim3(grid), dim3(block), (shared)}(kernel, __VA_ARGS__)
