// The TDP_PGF plugin as TensorRT calls it, without TensorRT and without a GPU.
//
// Built against a TensorRT header set (CMake target tdpcr_plugin_contract), with the plugin
// glue linked to the host reference of the C ABI instead of the CUDA kernel, so enqueue runs
// on host memory. Every call goes through TensorRT's own interface classes: the creator from
// getCreators(), the capability interfaces from getCapabilityInterface(), an IExprBuilder
// whose implementation sits behind TensorRT's apiv:: classes as the library's does.
//
//   tdpcr_plugin_contract                 run every contract check; exit 1 on any failure
//   tdpcr_plugin_contract enqueue DIR     run the plugin on DIR's inputs (see runEnqueueDir)
#include "pgf_capi.h"
#include "pgf_math.h"
#include "tdp_pgf_plugin.h"

#include <NvInferRuntime.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <random>
#include <string>
#include <vector>

extern "C" nvinfer1::IPluginCreatorInterface* const* getCreators(int32_t& nbCreators) noexcept;

using namespace nvinfer1;

namespace
{

int gFailures = 0;
int gChecks = 0;

#define CHECK(cond, what)                                                                                              \
    do                                                                                                                 \
    {                                                                                                                  \
        ++gChecks;                                                                                                     \
        if (!(cond))                                                                                                   \
        {                                                                                                              \
            ++gFailures;                                                                                               \
            std::fprintf(stderr, "FAIL %s:%d: %s (%s)\n", __FILE__, __LINE__, what, #cond);                            \
        }                                                                                                              \
    } while (0)

// --- an IExprBuilder on TensorRT's interface classes -------------------------------------

class DimImpl final : public apiv::VDimensionExpr
{
public:
    explicit DimImpl(int64_t value, bool constant)
        : mValue(value)
        , mConstant(constant)
    {
    }
    bool isConstant() const override
    {
        return mConstant;
    }
    int64_t getConstantValue() const override
    {
        return mConstant ? mValue : INT64_MIN;
    }
    bool isSizeTensor() const override
    {
        return false;
    }

private:
    int64_t mValue;
    bool mConstant;
};

// IDimensionExpr has no public constructor: a subclass sets its implementation, as the
// library does for its own expressions.
class Dim final : public IDimensionExpr
{
public:
    Dim(int64_t value, bool constant)
        : mDim(value, constant)
    {
        mImpl = &mDim;
    }
    ~Dim() noexcept override = default;

private:
    DimImpl mDim;
};

class BuilderImpl final : public apiv::VExprBuilder
{
public:
    IDimensionExpr const* constant(int64_t value) override
    {
        mDims.push_back(std::make_unique<Dim>(value, true));
        return mDims.back().get();
    }
    IDimensionExpr const* operation(DimensionOperation op, IDimensionExpr const& a, IDimensionExpr const& b) override
    {
        int64_t x = a.getConstantValue(), y = b.getConstantValue();
        int64_t v = 0;
        switch (op)
        {
        case DimensionOperation::kSUM: v = x + y; break;
        case DimensionOperation::kPROD: v = x * y; break;
        case DimensionOperation::kMAX: v = x > y ? x : y; break;
        case DimensionOperation::kMIN: v = x < y ? x : y; break;
        case DimensionOperation::kSUB: v = x - y; break;
        default: v = 0; break;
        }
        mDims.push_back(std::make_unique<Dim>(v, a.isConstant() && b.isConstant()));
        return mDims.back().get();
    }
    IDimensionExpr const* declareSizeTensor(int32_t, IDimensionExpr const&, IDimensionExpr const&) override
    {
        return nullptr;
    }
    // A dimension only known at run time (a dynamic batch, say).
    IDimensionExpr const* symbol()
    {
        mDims.push_back(std::make_unique<Dim>(0, false));
        return mDims.back().get();
    }

private:
    std::vector<std::unique_ptr<Dim>> mDims;
};

class Builder final : public IExprBuilder
{
public:
    Builder()
    {
        mImpl = &impl;
    }
    BuilderImpl impl;
};

// --- shapes and descriptors ------------------------------------------------------------

struct Shape
{
    int n, c, k, h, w;
};

Dims dims(std::initializer_list<int64_t> d)
{
    Dims out{};
    out.nbDims = static_cast<int32_t>(d.size());
    int i = 0;
    for (int64_t v : d)
    {
        out.d[i++] = v;
    }
    return out;
}

std::vector<Dims> inputDims(Shape s)
{
    return {dims({s.n, s.c, s.h, s.w}), dims({s.n, s.c, s.h, s.w}), dims({s.n, s.k, s.h, s.w}), dims({s.k, s.c}),
        dims({s.n, s.c}), dims({1, s.k, 3, 3}), dims({1})};
}

std::vector<Dims> outputDims(Shape s)
{
    return {dims({s.n, s.c, s.h, s.w}), dims({s.n, 1, s.h, s.w})};
}

std::vector<PluginTensorDesc> descs(std::vector<Dims> const& d, DataType type)
{
    std::vector<PluginTensorDesc> out;
    for (auto const& x : d)
    {
        out.push_back(PluginTensorDesc{x, type, TensorFormat::kLINEAR, 1.F});
    }
    return out;
}

std::vector<DynamicPluginTensorDesc> dynamicDescs(std::vector<Dims> const& d, DataType type)
{
    std::vector<DynamicPluginTensorDesc> out;
    for (auto const& x : d)
    {
        DynamicPluginTensorDesc dd{};
        dd.desc = PluginTensorDesc{x, type, TensorFormat::kLINEAR, 1.F};
        dd.min = x;
        dd.max = x;
        out.push_back(dd);
    }
    return out;
}

// --- the plugin through its creator ----------------------------------------------------

IPluginCreatorV3One* creator()
{
    int32_t n = 0;
    auto creators = getCreators(n);
    if (n != 1 || creators == nullptr || creators[0] == nullptr)
    {
        return nullptr;
    }
    auto info = creators[0]->getInterfaceInfo();
    if (std::strcmp(info.kind, "PLUGIN CREATOR_V3ONE") != 0)
    {
        return nullptr;
    }
    return static_cast<IPluginCreatorV3One*>(creators[0]);
}

// The fields the ONNX parser hands over for a TDP_PGF node: every node attribute, the
// parser's own plugin_version and plugin_namespace (strings) among them.
struct ParserFields
{
    explicit ParserFields(int32_t reliance)
        : mReliance(reliance)
    {
        fields.emplace_back("plugin_version", kPluginVersionString, PluginFieldType::kCHAR, 1);
        fields.emplace_back("plugin_namespace", kEmpty, PluginFieldType::kCHAR, 0);
        fields.emplace_back("reliance", &mReliance, PluginFieldType::kINT32, 1);
        collection.nbFields = static_cast<int32_t>(fields.size());
        collection.fields = fields.data();
    }
    static constexpr char kPluginVersionString[] = "1";
    static constexpr char kEmpty[] = "";
    int32_t mReliance;
    std::vector<PluginField> fields;
    PluginFieldCollection collection{};
};

struct Plugin
{
    std::unique_ptr<IPluginV3> owner;
    IPluginV3OneCore* core{};
    IPluginV3OneBuild* build{};
    IPluginV3OneRuntime* runtime{};

    explicit Plugin(IPluginV3* p)
        : owner(p)
    {
        if (p != nullptr)
        {
            core = static_cast<IPluginV3OneCore*>(p->getCapabilityInterface(PluginCapabilityType::kCORE));
            build = static_cast<IPluginV3OneBuild*>(p->getCapabilityInterface(PluginCapabilityType::kBUILD));
            runtime = static_cast<IPluginV3OneRuntime*>(p->getCapabilityInterface(PluginCapabilityType::kRUNTIME));
        }
    }
    bool ok() const
    {
        return owner && core && build && runtime;
    }
};

Plugin create(int32_t reliance, TensorRTPhase phase)
{
    ParserFields f(reliance);
    return Plugin(creator()->createPlugin("pgf_node", &f.collection, phase));
}

// --- host data and the reference through the C ABI -------------------------------------

struct Tensors
{
    std::vector<std::vector<float>> in;    // 7 inputs, FP32 values
    std::vector<std::vector<uint8_t>> raw; // as passed to the plugin (FP32 or FP16 bytes)
};

Tensors randomTensors(Shape s, DataType type, uint32_t seed)
{
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> u(-1.F, 1.F);
    size_t const sizes[7] = {size_t(s.n) * s.c * s.h * s.w, size_t(s.n) * s.c * s.h * s.w, size_t(s.n) * s.k * s.h * s.w,
        size_t(s.k) * s.c, size_t(s.n) * s.c, size_t(s.k) * 9, 1};
    Tensors t;
    for (size_t i = 0; i < 7; ++i)
    {
        std::vector<float> v(sizes[i]);
        for (auto& x : v)
        {
            x = u(rng);
        }
        if (i == 2) // prompts are a softmax over K: non-negative, summing to one
        {
            for (int n = 0; n < s.n; ++n)
                for (int p = 0; p < s.h * s.w; ++p)
                {
                    float sum = 0.F;
                    for (int k = 0; k < s.k; ++k)
                    {
                        float& x = v[(size_t(n) * s.k + k) * s.h * s.w + p];
                        x = std::exp(x);
                        sum += x;
                    }
                    for (int k = 0; k < s.k; ++k)
                        v[(size_t(n) * s.k + k) * s.h * s.w + p] /= sum;
                }
        }
        std::vector<uint8_t> raw;
        if (type == DataType::kHALF)
        {
            raw.resize(v.size() * 2);
            for (size_t j = 0; j < v.size(); ++j)
            {
                uint16_t h = tdpcr::float_to_half_bits(v[j]);
                std::memcpy(raw.data() + 2 * j, &h, 2);
            }
        }
        else
        {
            raw.resize(v.size() * 4);
            std::memcpy(raw.data(), v.data(), raw.size());
        }
        t.in.push_back(std::move(v));
        t.raw.push_back(std::move(raw));
    }
    return t;
}

size_t elementSize(DataType t)
{
    return t == DataType::kHALF ? 2 : 4;
}

// Runs the plugin's enqueue on host memory; reliance pre-filled with a sentinel byte.
int32_t enqueue(Plugin& p, Shape s, DataType type, Tensors const& t, std::vector<uint8_t>& fused, std::vector<uint8_t>& reliance)
{
    auto in = descs(inputDims(s), type);
    auto out = descs(outputDims(s), type);
    if (p.runtime->onShapeChange(in.data(), 7, out.data(), 2) != 0)
    {
        return -2;
    }
    fused.assign(size_t(s.n) * s.c * s.h * s.w * elementSize(type), 0xAB);
    reliance.assign(size_t(s.n) * s.h * s.w * elementSize(type), 0xCD);
    void const* inputs[7];
    for (int i = 0; i < 7; ++i)
    {
        inputs[i] = t.raw[size_t(i)].data();
    }
    void* outputs[2] = {fused.data(), reliance.data()};
    return p.runtime->enqueue(in.data(), out.data(), inputs, outputs, nullptr, nullptr);
}

// The same op straight through the C ABI, inputs in their documented order.
void reference(Shape s, DataType type, Tensors const& t, std::vector<uint8_t>& fused, std::vector<uint8_t>& reliance)
{
    fused.assign(size_t(s.n) * s.c * s.h * s.w * elementSize(type), 0);
    reliance.assign(size_t(s.n) * s.h * s.w * elementSize(type), 0);
    tdpcr_pgf_tensors x{t.raw[0].data(), t.raw[1].data(), t.raw[2].data(), t.raw[3].data(), t.raw[4].data(), t.raw[5].data(),
        t.raw[6].data(), fused.data(), reliance.data()};
    tdpcr_pgf_launch(&x, tdpcr_pgf_shape{s.n, s.c, s.k, s.h, s.w}, type == DataType::kHALF ? TDPCR_PGF_FLOAT16 : TDPCR_PGF_FLOAT32, nullptr);
}

// --- the checks -----------------------------------------------------------------------------

void checkCreator()
{
    auto c = creator();
    CHECK(c != nullptr, "getCreators returns one IPluginCreatorV3One");
    if (c == nullptr)
        return;
    CHECK(std::strcmp(c->getPluginName(), "TDP_PGF") == 0, "creator name");
    CHECK(std::strcmp(c->getPluginVersion(), "1") == 0, "creator version");
    auto names = c->getFieldNames();
    CHECK(names != nullptr && names->nbFields == 1 && std::strcmp(names->fields[0].name, "reliance") == 0
            && names->fields[0].type == PluginFieldType::kINT32,
        "the creator declares its one field, reliance (INT32)");
    Plugin p = create(1, TensorRTPhase::kBUILD);
    CHECK(p.ok(), "createPlugin at kBUILD with the parser's fields gives all three capabilities");
    if (!p.ok())
        return;
    CHECK(std::strcmp(p.core->getPluginName(), "TDP_PGF") == 0 && std::strcmp(p.core->getPluginVersion(), "1") == 0,
        "the plugin names itself as its creator does");
    CHECK(p.build->getNbOutputs() == 2, "two outputs");
    Plugin none(creator()->createPlugin("pgf_node", nullptr, TensorRTPhase::kBUILD));
    CHECK(none.ok(), "createPlugin without fields takes the defaults");
}

void checkTypes()
{
    Plugin p = create(1, TensorRTPhase::kBUILD);
    for (DataType t : {DataType::kFLOAT, DataType::kHALF})
    {
        DataType in[7];
        for (auto& x : in)
            x = t;
        DataType out[2] = {DataType::kINT32, DataType::kINT32};
        CHECK(p.build->getOutputDataTypes(out, 2, in, 7) == 0, "getOutputDataTypes succeeds");
        CHECK(out[0] == t && out[1] == t, "both outputs take the inputs' type");
    }
    DataType in[7] = {};
    DataType out[2];
    CHECK(p.build->getOutputDataTypes(out, 2, in, 6) != 0, "getOutputDataTypes refuses six inputs");
}

void checkShapes()
{
    Plugin p = create(1, TensorRTPhase::kBUILD);
    Builder b;
    Shape s{2, 24, 6, 17, 33};
    std::vector<DimsExprs> in(7);
    auto d = inputDims(s);
    for (int i = 0; i < 7; ++i)
    {
        in[size_t(i)].nbDims = d[size_t(i)].nbDims;
        for (int j = 0; j < d[size_t(i)].nbDims; ++j)
            in[size_t(i)].d[j] = b.impl.constant(d[size_t(i)].d[j]);
    }
    in[0].d[0] = b.impl.symbol(); // a dynamic batch stays dynamic
    DimsExprs out[2];
    CHECK(p.build->getOutputShapes(in.data(), 7, nullptr, 0, out, 2, b) == 0, "getOutputShapes succeeds");
    CHECK(out[0].nbDims == 4 && out[1].nbDims == 4, "both outputs are 4-D");
    CHECK(!out[0].d[0]->isConstant() && !out[1].d[0]->isConstant(), "the batch of both outputs follows the input's");
    CHECK(out[0].d[1]->getConstantValue() == 24 && out[0].d[2]->getConstantValue() == 17 && out[0].d[3]->getConstantValue() == 33,
        "fused: C x H x W of optical");
    CHECK(out[1].d[1]->isConstant() && out[1].d[1]->getConstantValue() == 1 && out[1].d[2]->getConstantValue() == 17
            && out[1].d[3]->getConstantValue() == 33,
        "reliance: 1 x H x W");
    CHECK(p.build->getOutputShapes(in.data(), 6, nullptr, 0, out, 2, b) != 0, "getOutputShapes refuses six inputs");
}

void checkFormats()
{
    Plugin p = create(1, TensorRTPhase::kBUILD);
    Shape s{1, 8, 4, 8, 8};
    auto all = dynamicDescs(inputDims(s), DataType::kFLOAT);
    auto outs = dynamicDescs(outputDims(s), DataType::kFLOAT);
    all.insert(all.end(), outs.begin(), outs.end());
    int const nTypes = EnumMax<DataType>(), nFormats = EnumMax<TensorFormat>();
    // Expected: position 0 FP32 or FP16 in linear layout; every other position the type of
    // position 0, linear. Every type and format of this TensorRT release is asked.
    for (int first = 0; first < nTypes; ++first)
    {
        all[0].desc.type = static_cast<DataType>(first);
        all[0].desc.format = TensorFormat::kLINEAR;
        bool const firstOk = all[0].desc.type == DataType::kFLOAT || all[0].desc.type == DataType::kHALF;
        CHECK(p.build->supportsFormatCombination(0, all.data(), 7, 2) == firstOk, "position 0: FP32 and FP16 only");
        for (int f = 0; f < nFormats; ++f)
        {
            all[0].desc.format = static_cast<TensorFormat>(f);
            bool const expect = firstOk && all[0].desc.format == TensorFormat::kLINEAR;
            CHECK(p.build->supportsFormatCombination(0, all.data(), 7, 2) == expect, "position 0: linear layout only");
        }
        all[0].desc.format = TensorFormat::kLINEAR;
        for (int pos = 1; pos < 9; ++pos)
        {
            for (int t = 0; t < nTypes; ++t)
            {
                for (int f = 0; f < nFormats; ++f)
                {
                    all[size_t(pos)].desc.type = static_cast<DataType>(t);
                    all[size_t(pos)].desc.format = static_cast<TensorFormat>(f);
                    bool const expect = t == first && static_cast<TensorFormat>(f) == TensorFormat::kLINEAR;
                    if (p.build->supportsFormatCombination(pos, all.data(), 7, 2) != expect)
                    {
                        CHECK(false, "positions 1..8: the type of position 0, linear");
                    }
                }
            }
            all[size_t(pos)].desc.type = all[0].desc.type;
            all[size_t(pos)].desc.format = TensorFormat::kLINEAR;
        }
    }
    CHECK(!p.build->supportsFormatCombination(9, all.data(), 7, 2), "no position 9");
    CHECK(!p.build->supportsFormatCombination(-1, all.data(), 7, 2), "no position -1");
}

void checkConfigure()
{
    Plugin p = create(1, TensorRTPhase::kBUILD);
    Shape s{2, 16, 5, 9, 11};
    auto in = dynamicDescs(inputDims(s), DataType::kFLOAT);
    auto out = dynamicDescs(outputDims(s), DataType::kFLOAT);
    CHECK(p.build->configurePlugin(in.data(), 7, out.data(), 2) == 0, "configurePlugin with consistent shapes");
    CHECK(p.build->configurePlugin(in.data(), 6, out.data(), 2) != 0, "configurePlugin refuses six inputs");
    CHECK(p.build->getWorkspaceSize(in.data(), 7, out.data(), 2) == 0, "no workspace");

    auto rt = create(1, TensorRTPhase::kRUNTIME);
    auto din = descs(inputDims(s), DataType::kFLOAT);
    auto dout = descs(outputDims(s), DataType::kFLOAT);
    CHECK(rt.runtime->onShapeChange(din.data(), 7, dout.data(), 2) == 0, "onShapeChange with consistent shapes");
    struct Bad
    {
        int input, axis;
        int64_t value;
        char const* what;
    } const bad[] = {{1, 1, 15, "sar_proj channels differ from optical's"}, {2, 2, 8, "prompt height differs"},
        {3, 0, 4, "bank rows differ from K"}, {3, 1, 17, "bank columns differ from C"}, {4, 0, 3, "context batch differs"},
        {5, 2, 5, "bias kernel not 3 x 3"}, {6, 0, 2, "bias_bias not one value"}};
    for (auto const& x : bad)
    {
        auto d = inputDims(s);
        d[size_t(x.input)].d[x.axis] = x.value;
        auto bd = descs(d, DataType::kFLOAT);
        CHECK(rt.runtime->onShapeChange(bd.data(), 7, dout.data(), 2) != 0, x.what);
    }
    for (int k : {9, 10, 11, 13, 14, 15, 17})
    {
        Shape sk = s;
        sk.k = k;
        auto bd = descs(inputDims(sk), DataType::kFLOAT);
        CHECK(rt.runtime->onShapeChange(bd.data(), 7, dout.data(), 2) != 0, "unsupported prompt counts are refused");
    }
}

bool sameBytes(std::vector<uint8_t> const& a, std::vector<uint8_t> const& b)
{
    return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size()) == 0;
}

bool untouched(std::vector<uint8_t> const& v, uint8_t sentinel)
{
    for (auto x : v)
        if (x != sentinel)
            return false;
    return true;
}

void checkEnqueueAndLifecycle()
{
    Shape const shapes[] = {{1, 8, 1, 7, 13}, {3, 24, 6, 16, 17}, {2, 32, 12, 9, 31}, {2, 16, 16, 5, 64}, {1, 40, 8, 33, 1}};
    for (DataType type : {DataType::kFLOAT, DataType::kHALF})
    {
        uint32_t seed = 1;
        for (Shape s : shapes)
        {
            Tensors t = randomTensors(s, type, seed++);
            std::vector<uint8_t> f, r, rf, rr;
            reference(s, type, t, rf, rr);
            Plugin p = create(1, TensorRTPhase::kRUNTIME);
            CHECK(enqueue(p, s, type, t, f, r) == 0, "enqueue succeeds");
            CHECK(sameBytes(f, rf) && sameBytes(r, rr), "enqueue computes the op on its inputs in their documented order");

            // clone and attachToContext: independent plugins that behave the same.
            std::unique_ptr<IPluginV3> clone(p.owner->clone());
            Plugin c(clone.release());
            std::unique_ptr<IPluginV3> attached(c.runtime->attachToContext(nullptr));
            Plugin a(attached.release());
            p.owner.reset(); // the copies outlive the original
            CHECK(c.ok() && a.ok(), "clone and attachToContext give whole plugins");
            std::vector<uint8_t> f2, r2;
            CHECK(a.ok() && enqueue(a, s, type, t, f2, r2) == 0 && sameBytes(f2, rf) && sameBytes(r2, rr),
                "the attached clone computes the same");
        }
    }
    // Serialisation: reliance 0 (the output left unwritten) survives getFieldsToSerialize and
    // createPlugin at kRUNTIME.
    Shape s{2, 16, 4, 8, 12};
    Tensors t = randomTensors(s, DataType::kFLOAT, 99);
    Plugin built = create(0, TensorRTPhase::kBUILD);
    auto fields = built.runtime->getFieldsToSerialize();
    CHECK(fields != nullptr, "getFieldsToSerialize returns fields");
    Plugin restored(creator()->createPlugin("pgf_node", fields, TensorRTPhase::kRUNTIME));
    CHECK(restored.ok(), "createPlugin at kRUNTIME from the serialised fields");
    std::vector<uint8_t> f, r, rf, rr;
    reference(s, DataType::kFLOAT, t, rf, rr);
    CHECK(restored.ok() && enqueue(restored, s, DataType::kFLOAT, t, f, r) == 0 && sameBytes(f, rf), "the restored plugin computes the same");
    CHECK(untouched(r, 0xCD), "reliance=0 survives serialisation: the reliance output stays unwritten");
    Plugin on = create(1, TensorRTPhase::kRUNTIME);
    CHECK(enqueue(on, s, DataType::kFLOAT, t, f, r) == 0 && sameBytes(r, rr), "reliance=1 writes the reliance output");
}

// --- enqueue on files (pytest compares with PyTorch) -------------------------------------

std::vector<uint8_t> readFile(std::string const& path)
{
    std::ifstream f(path, std::ios::binary);
    return std::vector<uint8_t>((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

// DIR/shape.txt: "n c k h w dtype reliance" (dtype 0 = FP32, 1 = FP16); DIR/in0.bin .. in6.bin
// the inputs in the plugin's order; writes DIR/fused.bin and DIR/reliance.bin.
int runEnqueueDir(std::string const& dir)
{
    std::ifstream meta(dir + "/shape.txt");
    Shape s{};
    int dtype = 0, rel = 1;
    if (!(meta >> s.n >> s.c >> s.k >> s.h >> s.w >> dtype >> rel))
    {
        std::fprintf(stderr, "%s/shape.txt: expected 'n c k h w dtype reliance'\n", dir.c_str());
        return 2;
    }
    DataType const type = dtype == 1 ? DataType::kHALF : DataType::kFLOAT;
    Tensors t;
    for (int i = 0; i < 7; ++i)
    {
        t.raw.push_back(readFile(dir + "/in" + std::to_string(i) + ".bin"));
    }
    // Through serialisation, as an engine loads the plugin.
    Plugin built = create(rel, TensorRTPhase::kBUILD);
    Plugin p(creator()->createPlugin("pgf_node", built.runtime->getFieldsToSerialize(), TensorRTPhase::kRUNTIME));
    std::vector<uint8_t> f, r;
    int32_t const status = enqueue(p, s, type, t, f, r);
    if (status != 0)
    {
        std::fprintf(stderr, "enqueue failed (%d)\n", status);
        return 1;
    }
    std::ofstream(dir + "/fused.bin", std::ios::binary).write(reinterpret_cast<char const*>(f.data()), static_cast<std::streamsize>(f.size()));
    std::ofstream(dir + "/reliance.bin", std::ios::binary).write(reinterpret_cast<char const*>(r.data()), static_cast<std::streamsize>(r.size()));
    return 0;
}

} // namespace

int main(int argc, char** argv)
{
    if (argc == 3 && std::string(argv[1]) == "enqueue")
    {
        return runEnqueueDir(argv[2]);
    }
    checkCreator();
    if (creator() != nullptr)
    {
        checkTypes();
        checkShapes();
        checkFormats();
        checkConfigure();
        checkEnqueueAndLifecycle();
    }
    std::printf("TDP_PGF plugin contract (TensorRT headers %d.%d): %d checks, %d failed\n", NV_TENSORRT_MAJOR, NV_TENSORRT_MINOR,
        gChecks, gFailures);
    return gFailures == 0 ? 0 : 1;
}
