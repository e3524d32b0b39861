// Entry points TensorRT looks up in a plugin library loaded at run time
// (IPluginRegistry::loadLibrary, trtexec --dynamicPlugins, the ONNX parser's fallback).
#include "tdp_pgf_plugin.h"

#define TDPCR_EXPORT extern "C" __attribute__((visibility("default")))

namespace
{
nvinfer1::ILoggerFinder* gLoggerFinder = nullptr;
}

TDPCR_EXPORT void setLoggerFinder(nvinfer1::ILoggerFinder* finder) noexcept
{
    gLoggerFinder = finder;
}

TDPCR_EXPORT nvinfer1::IPluginCreatorInterface* const* getCreators(int32_t& nbCreators) noexcept
{
    static tdpcr::PgfPluginCreator creator;
    static nvinfer1::IPluginCreatorInterface* const creators[] = {&creator};
    nbCreators = 1;
    return creators;
}
