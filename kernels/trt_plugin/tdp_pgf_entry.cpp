// Entry points TensorRT looks up in a plugin library loaded at run time
// (IPluginRegistry::loadLibrary, trtexec --dynamicPlugins, the ONNX parser's fallback).
#include "tdp_pgf_plugin.h"

#include <string>

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

// Not a TensorRT entry point: the creators this library registers, one "name/version/namespace"
// a line, asked from the creators themselves, for `tdpcr-edge check --plugin-lib`.
TDPCR_EXPORT char const* tdpcr_plugin_creators() noexcept
{
    static std::string const text = [] {
        int32_t n = 0;
        auto const* creators = getCreators(n);
        std::string out;
        for (int32_t i = 0; i < n; ++i)
        {
            auto const* c = static_cast<nvinfer1::IPluginCreatorV3One const*>(creators[i]);
            out += std::string(c->getPluginName()) + "/" + c->getPluginVersion() + "/" + c->getPluginNamespace() + "\n";
        }
        return out;
    }();
    return text.c_str();
}
