// Fused PGF on the GPU: one pass that reads O, phi(S) and P and writes F and the reliance
// map. Spatial bias, prompt contraction, gate, fusion and the channel mean all happen in
// registers; bank, context and bias weights sit in shared memory. No allocation and no
// synchronisation, so launches are safe inside CUDA graph capture.
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "pgf_capi.h"
#include "pgf_math.h"

// The launch, as a macro so that kernels/tests/cuda_emulation.h can run this very file on the
// CPU (it defines TDPCR_LAUNCH before this point).
#ifndef TDPCR_LAUNCH
#define TDPCR_LAUNCH(kernel, grid, block, shared, stream, ...) kernel<<<grid, block, shared, stream>>>(__VA_ARGS__)
#endif

namespace
{

constexpr int kThreads = 256;

__device__ __forceinline__ float to_float(float v)
{
    return v;
}
__device__ __forceinline__ float to_float(__half v)
{
    return __half2float(v);
}
template <typename T>
__device__ __forceinline__ T from_float(float v);
template <>
__device__ __forceinline__ float from_float<float>(float v)
{
    return v;
}
template <>
__device__ __forceinline__ __half from_float<__half>(float v)
{
    return __float2half_rn(v);
}

// Two adjacent elements in one load or store: half2 for FP16, float2 for FP32.
template <typename T>
struct Pair;
template <>
struct Pair<float>
{
    using type = float2;
    static __device__ __forceinline__ void load(const float* p, float& a, float& b)
    {
        const float2 v = __ldg(reinterpret_cast<const float2*>(p));
        a = v.x;
        b = v.y;
    }
    static __device__ __forceinline__ void store(float* p, float a, float b)
    {
        *reinterpret_cast<float2*>(p) = make_float2(a, b);
    }
};
template <>
struct Pair<__half>
{
    static __device__ __forceinline__ void load(const __half* p, float& a, float& b)
    {
        const float2 v = __half22float2(*reinterpret_cast<const __half2*>(p));
        a = v.x;
        b = v.y;
    }
    static __device__ __forceinline__ void store(__half* p, float a, float b)
    {
        *reinterpret_cast<__half2*>(p) = __floats2half2_rn(a, b);
    }
};

// VEC pixels per thread (1, or 2 with paired loads); KP prompt channels.
template <typename T, int VEC, int KP>
__global__ void __launch_bounds__(kThreads) pgf_fused_kernel(const T* __restrict__ optical,
    const T* __restrict__ sar, const T* __restrict__ prompt, const T* __restrict__ bank,
    const T* __restrict__ context, const T* __restrict__ bias_weight, const T* __restrict__ bias_bias,
    T* __restrict__ fused, T* __restrict__ reliance, int channels, int height, int width)
{
    extern __shared__ float smem[];
    float* s_bank = smem;                   // KP x C
    float* s_ctx = s_bank + KP * channels;  // C, this image's context
    float* s_weight = s_ctx + channels;     // KP x 3 x 3

    const int n = blockIdx.y;
    for (int i = threadIdx.x; i < KP * channels; i += blockDim.x)
    {
        s_bank[i] = to_float(bank[i]);
    }
    for (int i = threadIdx.x; i < channels; i += blockDim.x)
    {
        s_ctx[i] = to_float(context[(long) n * channels + i]);
    }
    for (int i = threadIdx.x; i < KP * 9; i += blockDim.x)
    {
        s_weight[i] = to_float(bias_weight[i]);
    }
    __syncthreads();

    const long hw = (long) height * width;
    const long first = ((long) blockIdx.x * blockDim.x + threadIdx.x) * VEC;
    if (first >= hw)
    {
        return;
    }
    const float bias = to_float(bias_bias[0]);
    const T* p_n = prompt + (long) n * KP * hw;
    auto load_p = [&](int k, int y, int x) { return to_float(p_n[(long) k * hw + (long) y * width + x]); };

    float p[VEC][KP];
    float b[VEC];
    float sum[VEC];
#pragma unroll
    for (int v = 0; v < VEC; ++v)
    {
        const long pix = first + v;
        const int y = (int) (pix / width);
        const int x = (int) (pix % width);
#pragma unroll
        for (int k = 0; k < KP; ++k)
        {
            p[v][k] = load_p(k, y, x);
        }
        b[v] = tdpcr::spatial_bias(load_p, s_weight, bias, KP, height, width, y, x);
        sum[v] = 0.0f;
    }

    for (int c = 0; c < channels; ++c)
    {
        const long i = ((long) n * channels + c) * hw + first;
        const float g = s_ctx[c];
        float o[VEC], s[VEC], f[VEC];
        if (VEC == 2)
        {
            Pair<T>::load(optical + i, o[0], o[VEC - 1]);
            Pair<T>::load(sar + i, s[0], s[VEC - 1]);
        }
        else
        {
            o[0] = to_float(optical[i]);
            s[0] = to_float(sar[i]);
        }
#pragma unroll
        for (int v = 0; v < VEC; ++v)
        {
            const float a = tdpcr::gate_fixed<KP>(p[v], s_bank, c, channels, g, b[v]);
            f[v] = tdpcr::fuse(o[v], s[v], a);
            sum[v] += a;
        }
        if (VEC == 2)
        {
            Pair<T>::store(fused + i, f[0], f[VEC - 1]);
        }
        else
        {
            fused[i] = from_float<T>(f[0]);
        }
    }
    if (reliance != nullptr)
    {
        const float inv = 1.0f / (float) channels;
#pragma unroll
        for (int v = 0; v < VEC; ++v)
        {
            reliance[(long) n * hw + first + v] = from_float<T>(sum[v] * inv);
        }
    }
}

template <typename T, int VEC, int KP>
tdpcr_pgf_status launch_k(const tdpcr_pgf_tensors& t, tdpcr_pgf_shape s, cudaStream_t stream)
{
    const size_t smem = sizeof(float) * ((size_t) KP * s.c + s.c + KP * 9);
    auto kernel = pgf_fused_kernel<T, VEC, KP>;
    if (smem > 48 * 1024 && cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int) smem) != cudaSuccess)
    {
        return TDPCR_PGF_ERR_SHAPE;
    }
    const long hw = (long) s.h * s.w;
    const dim3 grid((unsigned) ((hw / VEC + kThreads - 1) / kThreads), (unsigned) s.n);
    TDPCR_LAUNCH(kernel, grid, kThreads, smem, stream, static_cast<const T*>(t.optical), static_cast<const T*>(t.sar_proj),
        static_cast<const T*>(t.prompt), static_cast<const T*>(t.bank), static_cast<const T*>(t.context),
        static_cast<const T*>(t.bias_weight), static_cast<const T*>(t.bias_bias), static_cast<T*>(t.fused),
        static_cast<T*>(t.reliance), s.c, s.h, s.w);
    return cudaGetLastError() == cudaSuccess ? TDPCR_PGF_OK : TDPCR_PGF_ERR_CUDA;
}

template <typename T, int VEC>
tdpcr_pgf_status dispatch_k(const tdpcr_pgf_tensors& t, tdpcr_pgf_shape s, cudaStream_t stream)
{
    switch (s.k)
    {
    case 1: return launch_k<T, VEC, 1>(t, s, stream);
    case 2: return launch_k<T, VEC, 2>(t, s, stream);
    case 3: return launch_k<T, VEC, 3>(t, s, stream);
    case 4: return launch_k<T, VEC, 4>(t, s, stream);
    case 5: return launch_k<T, VEC, 5>(t, s, stream);
    case 6: return launch_k<T, VEC, 6>(t, s, stream);
    case 7: return launch_k<T, VEC, 7>(t, s, stream);
    case 8: return launch_k<T, VEC, 8>(t, s, stream);
    case 12: return launch_k<T, VEC, 12>(t, s, stream);
    case 16: return launch_k<T, VEC, 16>(t, s, stream);
    default: return TDPCR_PGF_ERR_SHAPE;
    }
}

bool aligned(const void* p, size_t bytes)
{
    return (reinterpret_cast<uintptr_t>(p) % bytes) == 0;
}

template <typename T>
tdpcr_pgf_status dispatch(const tdpcr_pgf_tensors& t, tdpcr_pgf_shape s, cudaStream_t stream)
{
    // Paired loads need an even plane size (pairs never straddle planes) and aligned bases.
    const bool pairs = ((long) s.h * s.w) % 2 == 0 && aligned(t.optical, 2 * sizeof(T)) && aligned(t.sar_proj, 2 * sizeof(T))
        && aligned(t.fused, 2 * sizeof(T));
    return pairs ? dispatch_k<T, 2>(t, s, stream) : dispatch_k<T, 1>(t, s, stream);
}

} // namespace

extern "C" tdpcr_pgf_status tdpcr_pgf_launch(
    const tdpcr_pgf_tensors* tensors, tdpcr_pgf_shape shape, tdpcr_pgf_dtype dtype, void* stream)
{
    const tdpcr_pgf_status status = tdpcr::check_launch(tensors, shape, dtype);
    if (status != TDPCR_PGF_OK)
    {
        return status;
    }
    cudaStream_t s = static_cast<cudaStream_t>(stream);
    return dtype == TDPCR_PGF_FLOAT32 ? dispatch<float>(*tensors, shape, s) : dispatch<__half>(*tensors, shape, s);
}

extern "C" const char* tdpcr_pgf_backend(void)
{
    return "cuda";
}

extern "C" const char* tdpcr_pgf_status_string(tdpcr_pgf_status status)
{
    return tdpcr::status_string(status);
}
