/*
 * Entry points of libsaint_plugins.so, one creator registered once whichever way the library
 * is loaded:
 *   - getCreators / setLoggerFinder: IPluginRegistry::loadLibrary, trtexec --dynamicPlugins,
 *     trt.get_plugin_registry().load_library (TensorRT >= 10.0);
 *   - load-time registration (SAINT_STATIC_REGISTRATION, ON by default) for loaders that only
 *     dlopen: Polygraphy --plugins (ctypes.CDLL), LD_PRELOAD, Triton's
 *     --backend-config=tensorrt,plugins=..., trtexec --plugins. The library does not link
 *     libnvinfer: when it loads, it looks for an already loaded libnvinfer (dlopen with
 *     RTLD_NOLOAD, so a copy loaded RTLD_LOCAL by Python counts too) and registers with its
 *     getPluginRegistry(). Nothing is registered when no libnvinfer is loaded yet.
 *   - when both meet (the library was registered on load and then loadLibrary calls
 *     getCreators), getCreators first withdraws the load-time registration, so loadLibrary's
 *     registration is the only one (and deregisterLibrary removes it).
 */
#include "../saint_token_drop/saintTokenDropPlugin.h"

#include <NvInferRuntime.h>

#include <dlfcn.h>
#include <mutex>

namespace
{
saint::SaintTokenDropCreator& tokenDropCreator()
{
    static saint::SaintTokenDropCreator creator;
    return creator;
}

std::mutex gRegistrationMutex;
nvinfer1::IPluginRegistry* gLoadTimeRegistry{nullptr}; // where the load-time registration went
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
        {
            std::lock_guard<std::mutex> lock(gRegistrationMutex);
            if (gLoadTimeRegistry != nullptr)
            {
                gLoadTimeRegistry->deregisterCreator(tokenDropCreator());
                gLoadTimeRegistry = nullptr;
            }
        }
        nbCreators = 1;
        return creators;
    }
}

#ifdef SAINT_STATIC_REGISTRATION
namespace
{
using GetRegistry = nvinfer1::IPluginRegistry* (*) ();
using GetLogger = nvinfer1::ILogger* (*) ();

//! The full and lean/dispatch runtimes all export getPluginRegistry / getLogger.
constexpr char const* kRUNTIME_LIBRARIES[] = {"libnvinfer.so.10", "libnvinfer_lean.so.10", "libnvinfer_dispatch.so.10"};

//! getPluginRegistry / getLogger of a libnvinfer already in the process, or nullptr.
void* loadedRuntimeSymbol(char const* symbol)
{
    for (char const* lib : kRUNTIME_LIBRARIES)
    {
        void* handle = dlopen(lib, RTLD_LAZY | RTLD_NOLOAD);
        if (handle == nullptr)
            continue;
        void* fn = dlsym(handle, symbol);
        dlclose(handle); // RTLD_NOLOAD took a reference; the library stays loaded
        if (fn != nullptr)
            return fn;
    }
    return dlsym(RTLD_DEFAULT, symbol);
}

void registerOnLoad() noexcept
{
    try
    {
        auto getRegistry = reinterpret_cast<GetRegistry>(loadedRuntimeSymbol("getPluginRegistry"));
        nvinfer1::IPluginRegistry* registry = getRegistry != nullptr ? getRegistry() : nullptr;
        if (registry == nullptr)
            return; // not inside a TensorRT process (yet): loadLibrary/getCreators still works
        if (auto getLogger = reinterpret_cast<GetLogger>(loadedRuntimeSymbol("getLogger")))
            saint::setLogger(getLogger());
        std::lock_guard<std::mutex> lock(gRegistrationMutex);
        if (registry->getCreator(saint::kPLUGIN_NAME, saint::kPLUGIN_VERSION, saint::kPLUGIN_NAMESPACE) != nullptr)
            return; // another copy of the library registered it
        if (registry->registerCreator(tokenDropCreator(), saint::kPLUGIN_NAMESPACE))
            gLoadTimeRegistry = registry;
    }
    catch (...)
    {
        saint::logError("load-time registration failed");
    }
}

__attribute__((constructor)) void saintRegisterOnLoad()
{
    registerOnLoad();
}
} // namespace
#endif
