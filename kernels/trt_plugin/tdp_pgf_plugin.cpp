// TDP_PGF plugin glue: shape and type rules for the builder, and an enqueue that only
// launches the fused kernel (no allocation, no synchronisation: CUDA-graph safe).
#include "tdp_pgf_plugin.h"

#include "pgf_capi.h"

#include <cstring>
#include <new>

namespace tdpcr
{
namespace
{

constexpr int32_t kNbInputs = 7;
constexpr int32_t kNbOutputs = 2;
enum Input : int32_t
{
    kOptical = 0,
    kSarProj = 1,
    kPrompt = 2,
    kBank = 3,
    kContext = 4,
    kBiasWeight = 5,
    kBiasBias = 6
};

bool supportedPrompts(int64_t k)
{
    return (k >= 1 && k <= 8) || k == 12 || k == TDPCR_PGF_MAX_PROMPTS;
}

// Every input shape must agree with optical's N, C, H, W and prompt's K.
bool shapesAgree(nvinfer1::Dims const* d)
{
    if (d[kOptical].nbDims != 4 || d[kSarProj].nbDims != 4 || d[kPrompt].nbDims != 4 || d[kBank].nbDims != 2
        || d[kContext].nbDims != 2 || d[kBiasWeight].nbDims != 4 || d[kBiasBias].nbDims != 1)
    {
        return false;
    }
    auto const& o = d[kOptical];
    auto const& p = d[kPrompt];
    for (int32_t i = 0; i < 4; ++i)
    {
        if (d[kSarProj].d[i] != o.d[i])
        {
            return false;
        }
    }
    return p.d[0] == o.d[0] && p.d[2] == o.d[2] && p.d[3] == o.d[3] && supportedPrompts(p.d[1])
        && d[kBank].d[0] == p.d[1] && d[kBank].d[1] == o.d[1] && d[kContext].d[0] == o.d[0] && d[kContext].d[1] == o.d[1]
        && d[kBiasWeight].d[0] == 1 && d[kBiasWeight].d[1] == p.d[1] && d[kBiasWeight].d[2] == 3
        && d[kBiasWeight].d[3] == 3 && d[kBiasBias].d[0] == 1;
}

} // namespace

PgfPlugin::PgfPlugin(std::string nameSpace, int32_t writeReliance)
    : mNamespace(std::move(nameSpace))
    , mWriteReliance(writeReliance)
{
    mFields.emplace_back("reliance", &mWriteReliance, nvinfer1::PluginFieldType::kINT32, 1);
    mFieldCollection.nbFields = static_cast<int32_t>(mFields.size());
    mFieldCollection.fields = mFields.data();
}

nvinfer1::IPluginCapability* PgfPlugin::getCapabilityInterface(nvinfer1::PluginCapabilityType type) noexcept
{
    switch (type)
    {
    case nvinfer1::PluginCapabilityType::kCORE: return static_cast<nvinfer1::IPluginV3OneCore*>(this);
    case nvinfer1::PluginCapabilityType::kBUILD: return static_cast<nvinfer1::IPluginV3OneBuild*>(this);
    case nvinfer1::PluginCapabilityType::kRUNTIME: return static_cast<nvinfer1::IPluginV3OneRuntime*>(this);
    }
    return nullptr;
}

nvinfer1::IPluginV3* PgfPlugin::clone() noexcept
{
    return new (std::nothrow) PgfPlugin(mNamespace, mWriteReliance);
}

char const* PgfPlugin::getPluginName() const noexcept
{
    return kPluginName;
}

char const* PgfPlugin::getPluginVersion() const noexcept
{
    return kPluginVersion;
}

char const* PgfPlugin::getPluginNamespace() const noexcept
{
    return mNamespace.c_str();
}

int32_t PgfPlugin::configurePlugin(nvinfer1::DynamicPluginTensorDesc const* in, int32_t nbInputs,
    nvinfer1::DynamicPluginTensorDesc const* /* out */, int32_t nbOutputs) noexcept
{
    if (in == nullptr || nbInputs != kNbInputs || nbOutputs != kNbOutputs)
    {
        return -1;
    }
    return 0;
}

int32_t PgfPlugin::getOutputDataTypes(nvinfer1::DataType* outputTypes, int32_t nbOutputs,
    nvinfer1::DataType const* inputTypes, int32_t nbInputs) const noexcept
{
    if (nbInputs != kNbInputs || nbOutputs != kNbOutputs)
    {
        return -1;
    }
    outputTypes[0] = inputTypes[kOptical];
    outputTypes[1] = inputTypes[kOptical];
    return 0;
}

int32_t PgfPlugin::getOutputShapes(nvinfer1::DimsExprs const* inputs, int32_t nbInputs,
    nvinfer1::DimsExprs const* /* shapeInputs */, int32_t /* nbShapeInputs */, nvinfer1::DimsExprs* outputs,
    int32_t nbOutputs, nvinfer1::IExprBuilder& exprBuilder) noexcept
{
    if (nbInputs != kNbInputs || nbOutputs != kNbOutputs || inputs[kOptical].nbDims != 4)
    {
        return -1;
    }
    outputs[0] = inputs[kOptical];
    outputs[1] = inputs[kOptical];
    outputs[1].d[1] = exprBuilder.constant(1);
    return 0;
}

bool PgfPlugin::supportsFormatCombination(
    int32_t pos, nvinfer1::DynamicPluginTensorDesc const* inOut, int32_t nbInputs, int32_t nbOutputs) noexcept
{
    if (nbInputs != kNbInputs || nbOutputs != kNbOutputs || pos < 0 || pos >= kNbInputs + kNbOutputs)
    {
        return false;
    }
    auto const& desc = inOut[pos].desc;
    if (desc.format != nvinfer1::TensorFormat::kLINEAR)
    {
        return false;
    }
    if (pos == 0)
    {
        return desc.type == nvinfer1::DataType::kFLOAT || desc.type == nvinfer1::DataType::kHALF;
    }
    return desc.type == inOut[0].desc.type;
}

int32_t PgfPlugin::getNbOutputs() const noexcept
{
    return kNbOutputs;
}

size_t PgfPlugin::getWorkspaceSize(nvinfer1::DynamicPluginTensorDesc const* /* inputs */, int32_t /* nbInputs */,
    nvinfer1::DynamicPluginTensorDesc const* /* outputs */, int32_t /* nbOutputs */) const noexcept
{
    return 0;
}

int32_t PgfPlugin::onShapeChange(nvinfer1::PluginTensorDesc const* in, int32_t nbInputs,
    nvinfer1::PluginTensorDesc const* /* out */, int32_t nbOutputs) noexcept
{
    if (nbInputs != kNbInputs || nbOutputs != kNbOutputs)
    {
        return -1;
    }
    nvinfer1::Dims dims[kNbInputs];
    for (int32_t i = 0; i < kNbInputs; ++i)
    {
        dims[i] = in[i].dims;
    }
    return shapesAgree(dims) ? 0 : -1;
}

int32_t PgfPlugin::enqueue(nvinfer1::PluginTensorDesc const* inputDesc, nvinfer1::PluginTensorDesc const* /* outputDesc */,
    void const* const* inputs, void* const* outputs, void* /* workspace */, cudaStream_t stream) noexcept
{
    auto const& o = inputDesc[kOptical].dims;
    tdpcr_pgf_shape shape{static_cast<int>(o.d[0]), static_cast<int>(o.d[1]),
        static_cast<int>(inputDesc[kPrompt].dims.d[1]), static_cast<int>(o.d[2]), static_cast<int>(o.d[3])};
    tdpcr_pgf_tensors tensors{inputs[kOptical], inputs[kSarProj], inputs[kPrompt], inputs[kBank], inputs[kContext],
        inputs[kBiasWeight], inputs[kBiasBias], outputs[0], mWriteReliance != 0 ? outputs[1] : nullptr};
    tdpcr_pgf_dtype const dtype
        = inputDesc[kOptical].type == nvinfer1::DataType::kHALF ? TDPCR_PGF_FLOAT16 : TDPCR_PGF_FLOAT32;
    return tdpcr_pgf_launch(&tensors, shape, dtype, stream) == TDPCR_PGF_OK ? 0 : -1;
}

nvinfer1::IPluginV3* PgfPlugin::attachToContext(nvinfer1::IPluginResourceContext* /* context */) noexcept
{
    return clone();
}

nvinfer1::PluginFieldCollection const* PgfPlugin::getFieldsToSerialize() noexcept
{
    return &mFieldCollection;
}

PgfPluginCreator::PgfPluginCreator()
{
    mFieldNames.emplace_back("reliance", nullptr, nvinfer1::PluginFieldType::kINT32, 1);
    mFieldCollection.nbFields = static_cast<int32_t>(mFieldNames.size());
    mFieldCollection.fields = mFieldNames.data();
}

char const* PgfPluginCreator::getPluginName() const noexcept
{
    return kPluginName;
}

char const* PgfPluginCreator::getPluginVersion() const noexcept
{
    return kPluginVersion;
}

char const* PgfPluginCreator::getPluginNamespace() const noexcept
{
    return mNamespace.c_str();
}

nvinfer1::PluginFieldCollection const* PgfPluginCreator::getFieldNames() noexcept
{
    return &mFieldCollection;
}

nvinfer1::IPluginV3* PgfPluginCreator::createPlugin(
    char const* /* name */, nvinfer1::PluginFieldCollection const* fc, nvinfer1::TensorRTPhase /* phase */) noexcept
{
    // The ONNX parser hands over every node attribute (plugin_version, plugin_namespace
    // too); only the fields of this plugin are read.
    int32_t writeReliance = 1;
    if (fc != nullptr)
    {
        for (int32_t i = 0; i < fc->nbFields; ++i)
        {
            auto const& f = fc->fields[i];
            if (f.name != nullptr && std::strcmp(f.name, "reliance") == 0 && f.type == nvinfer1::PluginFieldType::kINT32
                && f.data != nullptr && f.length == 1)
            {
                writeReliance = *static_cast<int32_t const*>(f.data);
            }
        }
    }
    return new (std::nothrow) PgfPlugin(mNamespace, writeReliance);
}

} // namespace tdpcr
