/*
 * Stand-in libnvinfer.so.<major> for registration tests on machines without TensorRT: exports the
 * entry points a plugin library may look up (getPluginRegistry, getLogger) backed by the test
 * host's registry, plus saintStubCount() for the tests to read the registry.
 */
#include "trtHost.h"

namespace
{
saint_host::HostLogger& stubLogger()
{
    static saint_host::HostLogger logger;
    return logger;
}
saint_host::HostRegistry& stubRegistry()
{
    static saint_host::HostRegistry registry(&stubLogger());
    return registry;
}
} // namespace

extern "C"
{
    __attribute__((visibility("default"))) nvinfer1::IPluginRegistry* getPluginRegistry() noexcept
    {
        return &stubRegistry();
    }

    __attribute__((visibility("default"))) nvinfer1::ILogger* getLogger() noexcept
    {
        return &stubLogger();
    }

    //! Creators registered under (name, version, namespace); *duplicates = refused second registrations.
    __attribute__((visibility("default"))) int32_t saintStubCount(
        char const* name, char const* version, char const* ns, int32_t* duplicates, int32_t* registrations)
    {
        if (duplicates != nullptr)
            *duplicates = stubRegistry().duplicates;
        if (registrations != nullptr)
            *registrations = stubRegistry().registrations;
        return stubRegistry().count(name, version, ns);
    }

    //! Registry calls made from inside loadLibrary (each would deadlock on TensorRT's locked registry).
    __attribute__((visibility("default"))) int32_t saintStubReentrant()
    {
        return stubRegistry().reentrantCalls;
    }
}
