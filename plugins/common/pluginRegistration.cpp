/*
 * Entry points of libsaint_plugins.so:
 *   - getCreators / setLoggerFinder: trtexec --dynamicPlugins, IPluginRegistry::loadLibrary,
 *     and TensorRT's Python loader (TensorRT >= 10.0);
 *   - static registration with the global plugin registry when built with
 *     SAINT_STATIC_REGISTRATION (the library is then linked against libnvinfer).
 */
#include "../saint_token_drop/saintTokenDropPlugin.h"

#include <NvInferRuntime.h>

namespace
{
saint::SaintTokenDropCreator& tokenDropCreator()
{
    static saint::SaintTokenDropCreator creator;
    return creator;
}
} // namespace

#define SAINT_PUBLIC __attribute__((visibility("default")))

extern "C"
{
    SAINT_PUBLIC void setLoggerFinder(nvinfer1::ILoggerFinder* finder)
    {
        saint::setLogger(finder != nullptr ? finder->findLogger() : nullptr);
    }

    SAINT_PUBLIC nvinfer1::IPluginCreatorInterface* const* getCreators(int32_t& nbCreators)
    {
        static nvinfer1::IPluginCreatorInterface* const creators[] = {&tokenDropCreator()};
        nbCreators = 1;
        return creators;
    }
}

#ifdef SAINT_STATIC_REGISTRATION
namespace
{
struct StaticRegistration
{
    StaticRegistration()
    {
        auto* registry = getPluginRegistry();
        if (registry != nullptr)
            registry->registerCreator(tokenDropCreator(), saint::kPLUGIN_NAMESPACE);
    }
};
StaticRegistration const gStaticRegistration{};
} // namespace
#endif
