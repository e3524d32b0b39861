// Host reference of the fused PGF op: the same ABI and the same math header as the CUDA
// library, one pixel at a time. CI checks it against PyTorch, which checks the math the
// kernel shares with it.
#include "pgf_capi.h"
#include "pgf_math.h"

namespace
{

template <typename T>
struct Host;

template <>
struct Host<float>
{
    static float load(const float* p, long i)
    {
        return p[i];
    }
    static void store(float* p, long i, float v)
    {
        p[i] = v;
    }
};

template <>
struct Host<uint16_t>
{
    static float load(const uint16_t* p, long i)
    {
        return tdpcr::half_bits_to_float(p[i]);
    }
    static void store(uint16_t* p, long i, float v)
    {
        p[i] = tdpcr::float_to_half_bits(v);
    }
};

template <typename T>
void run(const tdpcr_pgf_tensors& t, tdpcr_pgf_shape s)
{
    using H = Host<T>;
    const long hw = (long) s.h * s.w;
    const T* optical = static_cast<const T*>(t.optical);
    const T* sar = static_cast<const T*>(t.sar_proj);
    const T* prompt = static_cast<const T*>(t.prompt);
    T* fused = static_cast<T*>(t.fused);
    T* reliance = static_cast<T*>(t.reliance);

    // The small operands as float, as the kernel keeps them in shared memory.
    float bank[TDPCR_PGF_MAX_PROMPTS * 1024];
    float weight[TDPCR_PGF_MAX_PROMPTS * 9];
    const bool bank_fits = (long) s.k * s.c <= (long) (sizeof(bank) / sizeof(bank[0]));
    float* bank_f = bank_fits ? bank : new float[(size_t) s.k * s.c];
    for (long i = 0; i < (long) s.k * s.c; ++i)
    {
        bank_f[i] = H::load(static_cast<const T*>(t.bank), i);
    }
    for (int i = 0; i < s.k * 9; ++i)
    {
        weight[i] = H::load(static_cast<const T*>(t.bias_weight), i);
    }
    const float bias = H::load(static_cast<const T*>(t.bias_bias), 0);

    for (int n = 0; n < s.n; ++n)
    {
        const T* p_n = prompt + (long) n * s.k * hw;
        auto load_p = [&](int k, int y, int x) { return H::load(p_n, (long) k * hw + (long) y * s.w + x); };
        for (int y = 0; y < s.h; ++y)
        {
            for (int x = 0; x < s.w; ++x)
            {
                const long pix = (long) y * s.w + x;
                float p[TDPCR_PGF_MAX_PROMPTS];
                for (int k = 0; k < s.k; ++k)
                {
                    p[k] = load_p(k, y, x);
                }
                const float b = tdpcr::spatial_bias(load_p, weight, bias, s.k, s.h, s.w, y, x);
                float sum = 0.0f;
                for (int c = 0; c < s.c; ++c)
                {
                    const float g = H::load(static_cast<const T*>(t.context), (long) n * s.c + c);
                    const float a = tdpcr::gate(p, bank_f, s.k, c, s.c, g, b);
                    const long i = ((long) n * s.c + c) * hw + pix;
                    H::store(fused, i, tdpcr::fuse(H::load(optical, i), H::load(sar, i), a));
                    sum += a;
                }
                if (reliance != nullptr)
                {
                    H::store(reliance, (long) n * hw + pix, sum / (float) s.c);
                }
            }
        }
    }
    if (!bank_fits)
    {
        delete[] bank_f;
    }
}

} // namespace

extern "C" tdpcr_pgf_status tdpcr_pgf_launch(
    const tdpcr_pgf_tensors* tensors, tdpcr_pgf_shape shape, tdpcr_pgf_dtype dtype, void* /* stream */)
{
    const tdpcr_pgf_status status = tdpcr::check_launch(tensors, shape, dtype);
    if (status != TDPCR_PGF_OK)
    {
        return status;
    }
    if (dtype == TDPCR_PGF_FLOAT32)
    {
        run<float>(*tensors, shape);
    }
    else
    {
        run<uint16_t>(*tensors, shape);
    }
    return TDPCR_PGF_OK;
}

extern "C" const char* tdpcr_pgf_backend(void)
{
    return "host";
}

extern "C" const char* tdpcr_pgf_status_string(tdpcr_pgf_status status)
{
    return tdpcr::status_string(status);
}
