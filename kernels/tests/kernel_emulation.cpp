// The CUDA kernel's own code on the CPU (cuda_emulation.h), against the host reference.
//
// kernels/pgf/pgf_kernel.cu is compiled as C++ under the emulation with its C ABI renamed
// (tdpcr_pgf_launch_emulated); this program runs both on the same inputs over shapes chosen to
// reach every path of the kernel: paired loads (even planes, aligned pointers) and single
// loads (odd planes, or pointers one element off), the tail of the last block, blocks that
// stage shared memory with several strides, dynamic shared memory above 48 KiB, the grid over
// N, every compiled prompt count, FP32 and FP16, the reliance output on and off. Built under
// AddressSanitizer and UBSan, so an index one past a tensor is an error even where the values
// would agree.
#include "pgf_capi.h"
#include "pgf_math.h"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

extern "C" tdpcr_pgf_status tdpcr_pgf_launch_emulated(const tdpcr_pgf_tensors* tensors, tdpcr_pgf_shape shape, tdpcr_pgf_dtype dtype, void* stream);

namespace
{

struct Case
{
    tdpcr_pgf_shape s;
    tdpcr_pgf_dtype dtype;
    int offset;    // elements by which optical, sar and fused start past an aligned address
    bool reliance; // ask for the reliance output
};

struct Buffer
{
    std::vector<unsigned char> bytes;
    size_t offset;
    void* data()
    {
        return bytes.data() + offset;
    }
};

size_t esize(tdpcr_pgf_dtype d)
{
    return d == TDPCR_PGF_FLOAT16 ? 2 : 4;
}

// A tensor of n elements, `offset` elements into its allocation (exactly as large as needed).
Buffer tensor(std::vector<float> const& values, tdpcr_pgf_dtype d, int offset)
{
    Buffer b{std::vector<unsigned char>((values.size() + size_t(offset)) * esize(d)), size_t(offset) * esize(d)};
    for (size_t i = 0; i < values.size(); ++i)
    {
        if (d == TDPCR_PGF_FLOAT16)
        {
            uint16_t h = tdpcr::float_to_half_bits(values[i]);
            std::memcpy(static_cast<unsigned char*>(b.data()) + 2 * i, &h, 2);
        }
        else
        {
            std::memcpy(static_cast<unsigned char*>(b.data()) + 4 * i, &values[i], 4);
        }
    }
    return b;
}

float valueAt(Buffer& b, tdpcr_pgf_dtype d, size_t i)
{
    if (d == TDPCR_PGF_FLOAT16)
    {
        uint16_t h;
        std::memcpy(&h, static_cast<unsigned char*>(b.data()) + 2 * i, 2);
        return tdpcr::half_bits_to_float(h);
    }
    float f;
    std::memcpy(&f, static_cast<unsigned char*>(b.data()) + 4 * i, 4);
    return f;
}

int runCase(Case const& c, uint32_t seed)
{
    auto const& s = c.s;
    size_t const plane = size_t(s.h) * s.w;
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> u(-1.F, 1.F);
    auto random = [&](size_t n) {
        std::vector<float> v(n);
        for (auto& x : v)
            x = u(rng);
        return v;
    };
    std::vector<float> prompt = random(size_t(s.n) * s.k * plane);
    for (auto& x : prompt)
        x = 0.5F * (x + 1.F) / float(s.k); // non-negative, about a distribution over K
    std::vector<float> in[7] = {random(size_t(s.n) * s.c * plane), random(size_t(s.n) * s.c * plane), prompt, random(size_t(s.k) * s.c),
        random(size_t(s.n) * s.c), random(size_t(s.k) * 9), random(1)};
    int const offsets[7] = {c.offset, c.offset, 0, 0, 0, 0, 0};
    int failures = 0;
    std::vector<float> outs[2][2];
    for (int impl = 0; impl < 2; ++impl)
    {
        Buffer b[7] = {tensor(in[0], c.dtype, offsets[0]), tensor(in[1], c.dtype, offsets[1]), tensor(in[2], c.dtype, 0), tensor(in[3], c.dtype, 0),
            tensor(in[4], c.dtype, 0), tensor(in[5], c.dtype, 0), tensor(in[6], c.dtype, 0)};
        Buffer fused = tensor(std::vector<float>(size_t(s.n) * s.c * plane, 0.F), c.dtype, c.offset);
        Buffer rel = tensor(std::vector<float>(size_t(s.n) * plane, 7.F), c.dtype, 0);
        tdpcr_pgf_tensors t{b[0].data(), b[1].data(), b[2].data(), b[3].data(), b[4].data(), b[5].data(), b[6].data(), fused.data(),
            c.reliance ? rel.data() : nullptr};
        tdpcr_pgf_status st = impl == 0 ? tdpcr_pgf_launch(&t, s, c.dtype, nullptr) : tdpcr_pgf_launch_emulated(&t, s, c.dtype, nullptr);
        if (st != TDPCR_PGF_OK)
        {
            std::fprintf(stderr, "FAIL %s launch returned %d\n", impl ? "emulated" : "host", int(st));
            return 1;
        }
        for (size_t i = 0; i < size_t(s.n) * s.c * plane; ++i)
            outs[impl][0].push_back(valueAt(fused, c.dtype, i));
        for (size_t i = 0; i < size_t(s.n) * plane; ++i)
            outs[impl][1].push_back(valueAt(rel, c.dtype, i));
    }
    float const tol = c.dtype == TDPCR_PGF_FLOAT16 ? 2e-3F : 1e-5F;
    for (int o = 0; o < 2; ++o)
    {
        for (size_t i = 0; i < outs[0][o].size(); ++i)
        {
            float const a = outs[0][o][i], b = outs[1][o][i];
            if (!(std::fabs(a - b) <= tol))
            {
                std::fprintf(stderr, "FAIL n=%d c=%d k=%d h=%d w=%d %s offset=%d reliance=%d: %s[%zu] host %g, emulated kernel %g\n", s.n, s.c, s.k,
                    s.h, s.w, c.dtype == TDPCR_PGF_FLOAT16 ? "fp16" : "fp32", c.offset, int(c.reliance), o ? "reliance" : "fused", i, double(a),
                    double(b));
                ++failures;
                break;
            }
        }
    }
    return failures;
}

} // namespace

int main()
{
    std::vector<Case> cases;
    int const ks[] = {1, 2, 3, 4, 5, 6, 7, 8, 12, 16};
    // (n, c, h, w): one pixel; odd planes; even planes with a tail in the last block (256
    // threads x 2 pixels = 512 per block); several blocks; C wider than the block, so the
    // shared-memory staging loops take more than one stride.
    tdpcr_pgf_shape const shapes[] = {{1, 3, 1, 1, 1}, {2, 5, 1, 7, 9}, {3, 13, 1, 10, 52}, {1, 8, 1, 33, 31}, {2, 300, 1, 4, 6}};
    uint32_t seed = 1;
    for (auto dtype : {TDPCR_PGF_FLOAT32, TDPCR_PGF_FLOAT16})
    {
        for (tdpcr_pgf_shape base : shapes)
        {
            for (int k : ks)
            {
                base.k = k;
                cases.push_back({base, dtype, 0, true});
            }
            base.k = 6;
            cases.push_back({base, dtype, 1, true});  // misaligned: single loads on an even plane
            cases.push_back({base, dtype, 0, false}); // no reliance output
        }
        // Dynamic shared memory above 48 KiB: (16 x 800 + 800 + 144) floats.
        cases.push_back({{2, 800, 16, 3, 6}, dtype, 0, true});
    }
    int failures = 0;
    size_t ran = 0;
    for (auto const& c : cases)
    {
        ++ran;
        failures += runCase(c, seed++);
        if (failures > 0)
        {
            break; // the first failing case says enough
        }
    }
    std::printf("emulated CUDA kernel against the host reference: %zu cases, %d failed\n", ran, failures);
    return failures == 0 ? 0 : 1;
}
