/*
 * C ABI of the fused Prompt-Guided Fusion (PGF) op, shared by the CUDA library
 * (libtdpcr_pgf_cuda.so) and the host reference (libtdpcr_pgf_host.so): both export
 * tdpcr_pgf_launch with this signature, so callers (ctypes, the TensorRT plugin, tests)
 * switch implementations by loading another library.
 *
 * Per pixel (n, y, x), with K prompt channels and C feature channels:
 *   b      = bias_bias + sum_{k,dy,dx} bias_weight[k][dy][dx] * P[n,k,y+dy,x+dx]   (zero pad)
 *   q_c    = sum_k P[n,k,y,x] * bank[k][c]
 *   a_c    = sigmoid(context[n][c] * q_c + b)
 *   F[c]   = O[c] + a_c * (S[c] - O[c])
 *   R      = mean_c a_c
 * All tensors are dense, NCHW, of one element type (FP32 or FP16); arithmetic is FP32.
 */
#ifndef TDPCR_PGF_CAPI_H
#define TDPCR_PGF_CAPI_H

#ifdef __cplusplus
extern "C" {
#endif

#define TDPCR_PGF_MAX_PROMPTS 16

typedef enum
{
    TDPCR_PGF_FLOAT32 = 0,
    TDPCR_PGF_FLOAT16 = 1
} tdpcr_pgf_dtype;

typedef enum
{
    TDPCR_PGF_OK = 0,
    TDPCR_PGF_ERR_NULL = 1,
    TDPCR_PGF_ERR_SHAPE = 2,
    TDPCR_PGF_ERR_DTYPE = 3,
    TDPCR_PGF_ERR_CUDA = 4
} tdpcr_pgf_status;

typedef struct
{
    int n, c, k, h, w;
} tdpcr_pgf_shape;

typedef struct
{
    const void* optical;     /* N x C x H x W */
    const void* sar_proj;    /* N x C x H x W */
    const void* prompt;      /* N x K x H x W */
    const void* bank;        /* K x C */
    const void* context;     /* N x C */
    const void* bias_weight; /* K x 3 x 3 */
    const void* bias_bias;   /* 1 */
    void* fused;             /* N x C x H x W */
    void* reliance;          /* N x 1 x H x W, or NULL: not written */
} tdpcr_pgf_tensors;

/* Prompt counts K supported: 1..8, 12, 16. Runs the op. `stream` is a cudaStream_t for the CUDA library and ignored by the host
 * reference. Never allocates and never synchronises (safe inside CUDA graph capture). */
tdpcr_pgf_status tdpcr_pgf_launch(const tdpcr_pgf_tensors* tensors, tdpcr_pgf_shape shape, tdpcr_pgf_dtype dtype, void* stream);

/* "cuda" or "host". */
const char* tdpcr_pgf_backend(void);

const char* tdpcr_pgf_status_string(tdpcr_pgf_status status);

#ifdef __cplusplus
}
#endif

#endif /* TDPCR_PGF_CAPI_H */
