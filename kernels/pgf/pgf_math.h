// The arithmetic of the fused PGF op, written once for the CUDA kernel and the host
// reference, so CI checks on the CPU the very expressions the GPU runs.
#ifndef TDPCR_PGF_MATH_H
#define TDPCR_PGF_MATH_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "pgf_capi.h"

#if defined(__CUDACC__)
#define TDPCR_HD __host__ __device__ __forceinline__
#else
#define TDPCR_HD inline
#endif

namespace tdpcr
{

TDPCR_HD float sigmoid(float x)
{
    return 1.0f / (1.0f + expf(-x));
}

// Validates a launch; shared so both libraries refuse the same inputs.
inline tdpcr_pgf_status check_launch(const tdpcr_pgf_tensors* t, tdpcr_pgf_shape s, tdpcr_pgf_dtype dtype)
{
    if (t == nullptr || t->optical == nullptr || t->sar_proj == nullptr || t->prompt == nullptr || t->bank == nullptr
        || t->context == nullptr || t->bias_weight == nullptr || t->bias_bias == nullptr || t->fused == nullptr)
    {
        return TDPCR_PGF_ERR_NULL;
    }
    // The kernel is compiled for these prompt counts (the model uses 4 to 8).
    const bool k_ok = (s.k >= 1 && s.k <= 8) || s.k == 12 || s.k == TDPCR_PGF_MAX_PROMPTS;
    if (s.n <= 0 || s.c <= 0 || s.h <= 0 || s.w <= 0 || !k_ok)
    {
        return TDPCR_PGF_ERR_SHAPE;
    }
    if (dtype != TDPCR_PGF_FLOAT32 && dtype != TDPCR_PGF_FLOAT16)
    {
        return TDPCR_PGF_ERR_DTYPE;
    }
    return TDPCR_PGF_OK;
}

// Prompt-conditioned spatial bias at (y, x): a 3 x 3 convolution over the K prompt planes
// with zero padding. `load(k, y, x)` reads one prompt value as float.
template <typename Load>
TDPCR_HD float spatial_bias(Load load, const float* weight, float bias, int k, int h, int w, int y, int x)
{
    float b = bias;
    for (int dy = -1; dy <= 1; ++dy)
    {
        const int yy = y + dy;
        if (yy < 0 || yy >= h)
        {
            continue;
        }
        for (int dx = -1; dx <= 1; ++dx)
        {
            const int xx = x + dx;
            if (xx < 0 || xx >= w)
            {
                continue;
            }
            for (int kk = 0; kk < k; ++kk)
            {
                b += weight[kk * 9 + (dy + 1) * 3 + (dx + 1)] * load(kk, yy, xx);
            }
        }
    }
    return b;
}

// Gate of channel c: sigmoid(g_c * sum_k p_k E[k][c] + b). `bank` is K x C, row-major.
TDPCR_HD float gate(const float* p, const float* bank, int k, int c, int channels, float g, float b)
{
    float q = 0.0f;
    for (int kk = 0; kk < k; ++kk)
    {
        q += p[kk] * bank[kk * channels + c];
    }
    return sigmoid(g * q + b);
}

// The same with the prompt count known at compile time, so the kernel keeps p[] in
// registers; the summation order is the same as gate()'s.
template <int KP>
TDPCR_HD float gate_fixed(const float* p, const float* bank, int c, int channels, float g, float b)
{
    float q = 0.0f;
#if defined(__CUDA_ARCH__)
#pragma unroll
#endif
    for (int kk = 0; kk < KP; ++kk)
    {
        q += p[kk] * bank[kk * channels + c];
    }
    return sigmoid(g * q + b);
}

TDPCR_HD float fuse(float optical, float sar, float a)
{
    return optical + a * (sar - optical);
}

inline const char* status_string(tdpcr_pgf_status status)
{
    switch (status)
    {
    case TDPCR_PGF_OK: return "ok";
    case TDPCR_PGF_ERR_NULL: return "a tensor pointer is null";
    case TDPCR_PGF_ERR_SHAPE: return "bad shape (every dimension > 0; prompts 1..8, 12 or 16)";
    case TDPCR_PGF_ERR_DTYPE: return "dtype must be FP32 or FP16";
    case TDPCR_PGF_ERR_CUDA: return "CUDA launch failed";
    }
    return "unknown status";
}

// IEEE half <-> float on the host (round to nearest even), for the reference's FP16 path.
inline float half_bits_to_float(uint16_t h)
{
    const uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1Fu;
    uint32_t mant = h & 0x3FFu;
    uint32_t bits;
    if (exp == 0)
    {
        if (mant == 0)
        {
            bits = sign;
        }
        else
        {
            exp = 127 - 15 + 1;
            while ((mant & 0x400u) == 0)
            {
                mant <<= 1;
                --exp;
            }
            mant &= 0x3FFu;
            bits = sign | (exp << 23) | (mant << 13);
        }
    }
    else if (exp == 0x1F)
    {
        bits = sign | 0x7F800000u | (mant << 13);
    }
    else
    {
        bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
    }
    float f;
    memcpy(&f, &bits, sizeof(f));
    return f;
}

inline uint16_t float_to_half_bits(float f)
{
    uint32_t x;
    memcpy(&x, &f, sizeof(x));
    const uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    const uint32_t abs = x & 0x7FFFFFFFu;
    if (abs >= 0x7F800000u)
    {
        return (uint16_t)(sign | 0x7C00u | (abs > 0x7F800000u ? 0x200u : 0u));
    }
    if (abs >= 0x477FF000u)
    {
        return (uint16_t)(sign | 0x7C00u); // overflow to infinity
    }
    if (abs < 0x38800000u)
    {
        // Subnormal half (or zero): the value in units of 2^-24 is m >> (126 - e), rounded
        // to nearest even. A carry into bit 10 correctly yields the smallest normal.
        if (abs < 0x33000000u)
        {
            return sign;
        }
        const uint32_t e = abs >> 23;
        const uint32_t m = (abs & 0x7FFFFFu) | 0x800000u;
        const uint32_t shift = 126u - e;
        uint32_t half_m = m >> shift;
        const uint32_t rem = m & ((1u << shift) - 1u);
        const uint32_t mid = 1u << (shift - 1u);
        if (rem > mid || (rem == mid && (half_m & 1u)))
        {
            ++half_m;
        }
        return (uint16_t)(sign | half_m);
    }
    uint32_t h = ((abs - 0x38000000u) >> 13);
    const uint32_t rem = abs & 0x1FFFu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1u)))
    {
        ++h;
    }
    return (uint16_t)(sign | h);
}

} // namespace tdpcr

#endif // TDPCR_PGF_MATH_H
