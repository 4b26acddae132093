/*
 * Loads a plugin library the way TensorRT tools do, in a process linked against a
 * libnvinfer.so.<major> (the stand-in of nvinferStub.cpp on machines without TensorRT), then prints
 * how many SaintTokenDrop v1 creators in namespace "saint" the registry holds, and how many registry
 * calls the library made from inside loadLibrary (TensorRT holds the registry's lock there).
 *   saint_registration_test STEP... ; STEP = dlopen:PATH     (Triton plugins=, trtexec --plugins)
 *                                           loadLibrary:PATH (trtexec --dynamicPlugins, IPluginRegistry::loadLibrary)
 *                                           deregister       (IPluginRegistry::deregisterLibrary of the last load)
 * Output: "count=C duplicates=D registrations=R reentrant=X"; exit 0 iff C == 1, D == 0 and X == 0 (C == 0
 * after deregister), 2 when a step fails.
 */
#include <NvInferRuntime.h>

#include <cstdio>
#include <cstring>
#include <dlfcn.h>
#include <string>

extern "C" int32_t saintStubCount(char const*, char const*, char const*, int32_t*, int32_t*);
extern "C" int32_t saintStubReentrant();

int main(int argc, char** argv)
{
    nvinfer1::IPluginRegistry* registry = getPluginRegistry();
    void* lastHandle = nullptr;
    bool deregistered = false;
    for (int i = 1; i < argc; ++i)
    {
        std::string const step = argv[i];
        if (step.rfind("dlopen:", 0) == 0)
        {
            if (dlopen(step.c_str() + 7, RTLD_LAZY | RTLD_LOCAL) == nullptr)
                return std::printf("dlopen failed: %s\n", dlerror()), 2;
        }
        else if (step.rfind("loadLibrary:", 0) == 0)
        {
            if ((lastHandle = registry->loadLibrary(step.c_str() + 12)) == nullptr)
                return std::printf("loadLibrary failed\n"), 2;
        }
        else if (step == "deregister" && lastHandle != nullptr)
        {
            registry->deregisterLibrary(lastHandle);
            deregistered = true;
        }
        else
            return std::printf("unknown step %s\n", step.c_str()), 2;
    }
    int32_t duplicates = 0;
    int32_t registrations = 0;
    int32_t const count = saintStubCount("SaintTokenDrop", "1", "saint", &duplicates, &registrations);
    std::printf("count=%d duplicates=%d registrations=%d reentrant=%d\n", count, duplicates, registrations, saintStubReentrant());
    return (count == (deregistered ? 0 : 1) && duplicates == 0 && saintStubReentrant() == 0) ? 0 : 1;
}
