/*
 * Pieces of the test host shared by the plugin walks (hostWalk.cpp, perSampleWalk.cpp): a plugin's
 * capability interfaces, a TensorRT process with the library's creators registered, and tensor
 * descriptors as the builder and the runtime hand them over.
 */
#pragma once

#include "trtHost.h"

#include "../saint_token_drop/saintTokenDropPlugin.h"

#include <fstream>
#include <memory>
#include <string>
#include <vector>

extern "C" nvinfer1::IPluginCreatorInterface* const* getCreators(int32_t& nbCreators);
extern "C" void setLoggerFinder(nvinfer1::ILoggerFinder* finder);

namespace saint_host
{
using namespace nvinfer1;

struct Caps
{
    std::unique_ptr<IPluginV3> owner;
    IPluginV3OneCore* core{nullptr};
    IPluginV3OneBuild* build{nullptr};
    IPluginV3OneRuntime* runtime{nullptr};
};

inline Caps caps(IPluginV3* p)
{
    Caps c;
    c.owner.reset(p);
    if (p == nullptr)
        return c;
    c.core = static_cast<IPluginV3OneCore*>(p->getCapabilityInterface(PluginCapabilityType::kCORE));
    c.build = static_cast<IPluginV3OneBuild*>(p->getCapabilityInterface(PluginCapabilityType::kBUILD));
    c.runtime = static_cast<IPluginV3OneRuntime*>(p->getCapabilityInterface(PluginCapabilityType::kRUNTIME));
    return c;
}

//! A TensorRT process: logger, registry, the library's creators registered as loadLibrary does.
struct Process
{
    HostLogger logger;
    HostRegistry registry{&logger};
    HostLoggerFinder finder{&logger};
    IPluginCreatorV3One* creator{nullptr};
    Process()
    {
        setLoggerFinder(&finder);
        int32_t n = 0;
        IPluginCreatorInterface* const* creators = getCreators(n);
        for (int32_t i = 0; i < n; ++i)
            registry.registerCreator(*creators[i], nullptr);
        creator = static_cast<IPluginCreatorV3One*>(
            registry.getCreator(saint::kPLUGIN_NAME, saint::kPLUGIN_VERSION, saint::kPLUGIN_NAMESPACE));
    }
    ~Process() { setLoggerFinder(nullptr); }
};

inline DynamicPluginTensorDesc dyn(DataType type, std::vector<int64_t> lo, std::vector<int64_t> hi)
{
    DynamicPluginTensorDesc d{};
    d.desc.type = type;
    d.desc.format = TensorFormat::kLINEAR;
    d.desc.dims.nbDims = d.min.nbDims = d.opt.nbDims = d.max.nbDims = static_cast<int32_t>(hi.size());
    for (size_t i = 0; i < hi.size(); ++i)
    {
        d.desc.dims.d[i] = lo[i] == hi[i] ? lo[i] : -1;
        d.min.d[i] = lo[i];
        d.opt.d[i] = d.max.d[i] = hi[i];
    }
    return d;
}

inline PluginTensorDesc concrete(DataType t, std::vector<int64_t> dims)
{
    PluginTensorDesc d{};
    d.type = t;
    d.format = TensorFormat::kLINEAR;
    d.dims.nbDims = static_cast<int32_t>(dims.size());
    for (size_t i = 0; i < dims.size(); ++i)
        d.dims.d[i] = dims[i];
    d.scale = 1.f;
    return d;
}

template <typename T>
bool readRaw(std::string const& path, std::vector<T>& out, size_t count)
{
    std::ifstream f(path, std::ios::binary);
    out.resize(count);
    return f && f.read(reinterpret_cast<char*>(out.data()), static_cast<std::streamsize>(count * sizeof(T)))
        && f.peek() == std::char_traits<char>::eof();
}

//! enqueue as the runtime calls it, when the kernels run on the CPU runtime (SAINT_HOST_ENQUEUE);
//! 77 otherwise (the host test reports enqueue as skipped).
inline int32_t enqueueOnHost(IPluginV3OneRuntime& runtime, std::vector<PluginTensorDesc> const& in,
    std::vector<PluginTensorDesc> const& out, void const* const* ins, void* const* outs, std::vector<unsigned char>& workspace)
{
#ifdef SAINT_HOST_ENQUEUE
    return runtime.enqueue(in.data(), out.data(), ins, outs, workspace.data(), nullptr);
#else
    (void) runtime, (void) in, (void) out, (void) ins, (void) outs, (void) workspace;
    return 77;
#endif
}

} // namespace saint_host
