/*
 * Entry points of the plugin libraries: one source, two libraries, one registration path each
 * (a library never calls the plugin registry from inside IPluginRegistry::loadLibrary, which holds
 * the registry's lock while it dlopens the library and calls getCreators):
 *
 *   libsaint_plugins.so (default): getCreators / setLoggerFinder, nothing at load time. For every
 *     loader that goes through the registry: IPluginRegistry::loadLibrary,
 *     trt.get_plugin_registry().load_library (what saint-export uses), trtexec --dynamicPlugins,
 *     plugins serialized into version-compatible engines (IBuilderConfig::setPluginsToSerialize).
 *
 *   libsaint_plugins_onload.so (SAINT_REGISTER_ON_LOAD): registers its creator when it is dlopened
 *     into a process that already has libnvinfer loaded, and exports no getCreators (so loadLibrary
 *     refuses it instead of re-entering the registry). For loaders that only dlopen:
 *     Polygraphy's --plugins and LoadPlugins (ctypes.CDLL), trtexec --plugins, and Triton's
 *     --backend-config=tensorrt,plugins=... (the TensorRT backend dlopens it after libnvinfer).
 *     It does not link libnvinfer: it finds the loaded runtime by soname (RTLD_NOLOAD, which also
 *     sees a copy loaded RTLD_LOCAL, as the tensorrt wheel loads it). LD_PRELOAD cannot work: the
 *     constructor runs before any libnvinfer is loaded, and nothing is registered.
 */
#include "../saint_token_drop/saintTokenDropPlugin.h"

#include <NvInferRuntime.h>
#include <NvInferVersion.h>

#define SAINT_PUBLIC __attribute__((visibility("default")))

// The TensorRT major this build targets: the headers' (the plugin and registry interfaces' ABI differs
// between majors, e.g. ILoggerFinder and IPluginRegistry changed in 11). Only the tests' emulated
// TensorRT sets SAINT_TENSORRT_MAJOR: its stand-in runtimes are all built from one set of headers.
#ifndef SAINT_TENSORRT_MAJOR
#define SAINT_TENSORRT_MAJOR NV_TENSORRT_MAJOR
#endif

extern "C" SAINT_PUBLIC int32_t saintPluginTensorRTMajor()
{
    return SAINT_TENSORRT_MAJOR;
}

namespace
{
saint::SaintTokenDropCreator& tokenDropCreator()
{
    static saint::SaintTokenDropCreator creator;
    return creator;
}
} // namespace

#ifndef SAINT_REGISTER_ON_LOAD

extern "C"
{
    //! Keeps the finder: findLogger() is asked at each message, from the thread of the plugin call.
    SAINT_PUBLIC void setLoggerFinder(nvinfer1::ILoggerFinder* finder)
    {
        saint::setLoggerFinder(finder);
    }

    SAINT_PUBLIC nvinfer1::IPluginCreatorInterface* const* getCreators(int32_t& nbCreators)
    {
        static nvinfer1::IPluginCreatorInterface* const creators[] = {&tokenDropCreator()};
        nbCreators = 1;
        return creators;
    }
}

#else // SAINT_REGISTER_ON_LOAD

#include <dlfcn.h>
#include <string>

namespace
{
using GetRegistry = nvinfer1::IPluginRegistry* (*) ();
using GetLogger = nvinfer1::ILogger* (*) ();

//! ``symbol`` of a TensorRT runtime already in the process (full, lean or dispatch library, of the
//! major built for first, then of the other supported majors), or nullptr; ``major`` says whose.
void* loadedRuntimeSymbol(char const* symbol, int& major)
{
    int const majors[] = {SAINT_TENSORRT_MAJOR, 10, 11};
    char const* const stems[] = {"libnvinfer.so.", "libnvinfer_lean.so.", "libnvinfer_dispatch.so."};
    for (int i = 0; i < 3; ++i)
    {
        if (i > 0 && majors[i] == SAINT_TENSORRT_MAJOR)
            continue;
        for (char const* stem : stems)
        {
            std::string const lib = stem + std::to_string(majors[i]);
            void* handle = dlopen(lib.c_str(), RTLD_LAZY | RTLD_NOLOAD);
            if (handle == nullptr)
                continue;
            void* fn = dlsym(handle, symbol);
            dlclose(handle); // RTLD_NOLOAD took a reference; the library stays loaded
            if (fn != nullptr)
                return major = majors[i], fn;
        }
    }
    return nullptr;
}

void registerOnLoad() noexcept
{
    try
    {
        int major = 0;
        auto getRegistry = reinterpret_cast<GetRegistry>(loadedRuntimeSymbol("getPluginRegistry", major));
        if (getRegistry != nullptr && major != SAINT_TENSORRT_MAJOR)
        {
            saint::logError("libsaint_plugins_onload.so was built for TensorRT " + std::to_string(SAINT_TENSORRT_MAJOR)
                + " but this process runs libnvinfer.so." + std::to_string(major)
                + ": nothing registered; rebuild plugins/ against the TensorRT " + std::to_string(major) + " headers");
            return;
        }
        std::string const own = "libnvinfer.so." + std::to_string(SAINT_TENSORRT_MAJOR);
        if (getRegistry == nullptr)
        {
            // nothing loaded yet (polygraphy run --plugins dlopens plugins before it imports tensorrt): load the
            // runtime from the library path, as a plugin that links libnvinfer would; `import tensorrt` later
            // finds this same copy when the path holds the tensorrt wheel's libnvinfer
            if (dlopen(own.c_str(), RTLD_LAZY | RTLD_GLOBAL) != nullptr)
                getRegistry = reinterpret_cast<GetRegistry>(loadedRuntimeSymbol("getPluginRegistry", major));
        }
        nvinfer1::IPluginRegistry* registry = getRegistry != nullptr ? getRegistry() : nullptr;
        if (registry == nullptr)
        {
            saint::logWarning("libsaint_plugins_onload.so: no TensorRT runtime is loaded and " + own
                + " is not on the library path: nothing registered. Put TensorRT's library folder (the tensorrt_libs "
                  "folder of the wheel) on LD_LIBRARY_PATH, or load libsaint_plugins.so through the plugin registry");
            return;
        }
        if (auto getLogger = reinterpret_cast<GetLogger>(loadedRuntimeSymbol("getLogger", major)))
            saint::setLoadTimeLogger(getLogger());
        if (registry->getCreator(saint::kPLUGIN_NAME, saint::kPLUGIN_VERSION, saint::kPLUGIN_NAMESPACE) != nullptr)
            return; // libsaint_plugins.so (or another copy) registered it already
        registry->registerCreator(tokenDropCreator(), saint::kPLUGIN_NAMESPACE);
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

#endif // SAINT_REGISTER_ON_LOAD
