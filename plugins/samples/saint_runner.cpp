/*
 * saint_runner: load a SAINT TensorRT engine (and the SaintTokenDrop plugin through the plugin
 * registry, unless the engine carries it), run a float32 .npy batch [B, 3, H, W], print the top-5
 * classes per image (or, for a vision encoder, each output's shape). The template for embedding an
 * engine in a C++ service.
 *
 *   saint_runner model.plan images.npy [--plugin path/to/libsaint_plugins.so] [--version-compatible]
 *
 * The plugin library: --plugin, else $SAINT_PLUGIN_LIB, else libsaint_plugins.so in this
 * executable's folder or its parent (where CMake builds both). --version-compatible: the engine was
 * built with saint-export --version-compatible and carries the plugin: nothing is loaded (TensorRT
 * refuses a second registration of the same creator) and the plan's host code is allowed to run.
 * Every output goes through an IOutputAllocator, so data-dependent shapes (a vote drop's token count
 * in a vision encoder's outputs) need no upper-bound guess.
 *
 * Exit codes: 0 ok, 2 usage, 4 unreadable input, 5 plugin/engine cannot be loaded, 7 inference failed.
 */
#include <NvInferRuntime.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <numeric>
#include <sstream>
#include <string>
#include <unistd.h>
#include <vector>

namespace
{
class Logger : public nvinfer1::ILogger
{
    void log(Severity severity, char const* msg) noexcept override
    {
        if (severity <= Severity::kWARNING)
            std::cerr << "[TensorRT] " << msg << "\n";
    }
};

struct Npy
{
    std::vector<int64_t> shape;
    std::vector<float> data;
};

//! Minimal reader for little-endian float32, C-order .npy files (what numpy.save writes).
bool readNpy(std::string const& path, Npy& out, std::string& error)
{
    std::ifstream f(path, std::ios::binary);
    if (!f)
        return error = "cannot open " + path, false;
    char magic[6];
    f.read(magic, 6);
    if (!f || std::string(magic, 6) != "\x93NUMPY")
        return error = path + " is not a .npy file", false;
    uint8_t version[2];
    f.read(reinterpret_cast<char*>(version), 2);
    uint32_t headerLen = 0;
    if (version[0] == 1)
    {
        uint16_t len16 = 0;
        f.read(reinterpret_cast<char*>(&len16), 2);
        headerLen = len16;
    }
    else
        f.read(reinterpret_cast<char*>(&headerLen), 4);
    std::string header(headerLen, ' ');
    f.read(&header[0], headerLen);
    if (header.find("'descr': '<f4'") == std::string::npos)
        return error = path + ": expected float32 ('<f4') data", false;
    if (header.find("'fortran_order': False") == std::string::npos)
        return error = path + ": expected C-order data", false;
    auto const open = header.find('(', header.find("'shape'"));
    auto const close = header.find(')', open);
    std::stringstream dims(header.substr(open + 1, close - open - 1));
    std::string item;
    while (std::getline(dims, item, ','))
        if (item.find_first_not_of(' ') != std::string::npos)
            out.shape.push_back(std::stoll(item));
    size_t const count = std::accumulate(out.shape.begin(), out.shape.end(), size_t{1},
        [](size_t a, int64_t b) { return a * static_cast<size_t>(b); });
    out.data.resize(count);
    f.read(reinterpret_cast<char*>(out.data.data()), static_cast<std::streamsize>(count * sizeof(float)));
    if (!f)
        return error = path + ": truncated data", false;
    return true;
}

#define CHECK_CUDA(call)                                                                                              \
    do                                                                                                                \
    {                                                                                                                 \
        cudaError_t const e = (call);                                                                                 \
        if (e != cudaSuccess)                                                                                         \
        {                                                                                                             \
            std::cerr << "error: CUDA: " << cudaGetErrorString(e) << "\n";                                            \
            return 7;                                                                                                 \
        }                                                                                                             \
    } while (0)

//! One output's device buffer, grown on demand; TensorRT tells the final shape through notifyShape.
class OutputAllocator : public nvinfer1::IOutputAllocator
{
public:
    ~OutputAllocator() override { cudaFree(mPtr); }

    void* reallocateOutputAsync(char const*, void*, uint64_t size, uint64_t, cudaStream_t) noexcept override
    {
        size = std::max<uint64_t>(size, 1);
        if (size > mSize)
        {
            cudaFree(mPtr);
            mPtr = nullptr;
            mSize = 0;
            if (cudaMalloc(&mPtr, size) != cudaSuccess)
                return mPtr = nullptr;
            mSize = size;
        }
        return mPtr;
    }

    void notifyShape(char const*, nvinfer1::Dims const& dims) noexcept override { mDims = dims; }

    void* mPtr{nullptr};
    uint64_t mSize{0};
    nvinfer1::Dims mDims{};
};

//! libsaint_plugins.so in this executable's folder or its parent, or "" when neither has it.
std::string pluginBesideExecutable()
{
    char self[PATH_MAX] = {};
    ssize_t const n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n <= 0)
        return "";
    std::string dir(self, static_cast<size_t>(n));
    for (int up = 0; up < 2 && dir.find('/') != std::string::npos; ++up)
    {
        dir = dir.substr(0, dir.rfind('/'));
        std::string const candidate = dir + "/libsaint_plugins.so";
        if (std::ifstream(candidate).good())
            return candidate;
    }
    return "";
}

int64_t volume(nvinfer1::Dims const& d)
{
    int64_t v = 1;
    for (int32_t i = 0; i < d.nbDims; ++i)
        v *= d.d[i];
    return v;
}
} // namespace

int main(int argc, char** argv)
{
    if (argc < 3)
    {
        std::cerr << "usage: saint_runner model.plan images.npy [--plugin libsaint_plugins.so] [--version-compatible]\n";
        return 2;
    }
    std::string const planPath = argv[1];
    std::string const npyPath = argv[2];
    std::string pluginPath;
    bool versionCompatible = false;
    for (int i = 3; i < argc; ++i)
    {
        std::string const arg = argv[i];
        if (arg == "--plugin" && i + 1 < argc)
            pluginPath = argv[++i];
        else if (arg == "--version-compatible")
            versionCompatible = true;
        else
            return std::cerr << "error: unknown argument " << arg << "\n", 2;
    }
    if (pluginPath.empty() && !versionCompatible)
    {
        char const* env = std::getenv("SAINT_PLUGIN_LIB");
        pluginPath = env != nullptr && *env ? env : pluginBesideExecutable();
    }

    Logger logger;
    std::unique_ptr<nvinfer1::IRuntime> runtime{nvinfer1::createInferRuntime(logger)};
    if (!runtime)
        return std::cerr << "error: cannot create the TensorRT runtime\n", 5;
    if (versionCompatible)
        runtime->setEngineHostCodeAllowed(true); // runs the plugin code embedded in the plan: only for plans you trust
    else if (pluginPath.empty())
        return std::cerr << "error: libsaint_plugins.so not found: pass --plugin, set SAINT_PLUGIN_LIB, or --version-compatible "
                            "for an engine that carries the plugin\n", 5;
    else if (runtime->getPluginRegistry().loadLibrary(pluginPath.c_str()) == nullptr)
        return std::cerr << "error: TensorRT cannot load the plugin library " << pluginPath << "\n", 5;

    std::ifstream planFile(planPath, std::ios::binary);
    if (!planFile)
        return std::cerr << "error: cannot read engine " << planPath << "\n", 4;
    std::vector<char> plan((std::istreambuf_iterator<char>(planFile)), std::istreambuf_iterator<char>());
    std::unique_ptr<nvinfer1::ICudaEngine> engine{runtime->deserializeCudaEngine(plan.data(), plan.size())};
    if (!engine)
        return std::cerr << "error: cannot deserialize " << planPath << " (TensorRT version, GPU or plugin mismatch;"
                            " a version-compatible engine needs --version-compatible)\n", 5;
    std::unique_ptr<nvinfer1::IExecutionContext> context{engine->createExecutionContext()};
    if (!context)
        return std::cerr << "error: cannot create an execution context (out of GPU memory?)\n", 5;

    Npy input;
    std::string error;
    if (!readNpy(npyPath, input, error))
        return std::cerr << "error: " << error << "\n", 4;
    if (input.shape.size() != 4)
        return std::cerr << "error: expected images [B, 3, H, W]\n", 4;

    std::string inName;
    std::vector<std::string> outNames;
    for (int32_t i = 0; i < engine->getNbIOTensors(); ++i)
    {
        char const* name = engine->getIOTensorName(i);
        if (engine->getTensorIOMode(name) == nvinfer1::TensorIOMode::kINPUT)
            inName = name;
        else
            outNames.emplace_back(name);
    }
    nvinfer1::Dims inDims{};
    inDims.nbDims = 4;
    for (int32_t d = 0; d < 4; ++d)
        inDims.d[d] = input.shape[d];
    if (!context->setInputShape(inName.c_str(), inDims))
        return std::cerr << "error: input shape outside the engine's profile\n", 4;

    void* dIn = nullptr;
    CHECK_CUDA(cudaMalloc(&dIn, input.data.size() * sizeof(float)));
    CHECK_CUDA(cudaMemcpy(dIn, input.data.data(), input.data.size() * sizeof(float), cudaMemcpyHostToDevice));
    context->setTensorAddress(inName.c_str(), dIn);
    std::map<std::string, std::unique_ptr<OutputAllocator>> allocators;
    for (auto const& name : outNames)
    {
        allocators[name] = std::make_unique<OutputAllocator>();
        if (!context->setOutputAllocator(name.c_str(), allocators[name].get()))
            return std::cerr << "error: cannot set an output allocator for " << name << "\n", 7;
    }
    cudaStream_t stream;
    CHECK_CUDA(cudaStreamCreate(&stream));
    if (!context->enqueueV3(stream))
        return std::cerr << "error: enqueueV3 failed\n", 7;
    CHECK_CUDA(cudaStreamSynchronize(stream));

    for (auto const& name : outNames)
    {
        OutputAllocator const& out = *allocators[name];
        bool const logits = out.mDims.nbDims == 2 && engine->getTensorDataType(name.c_str()) == nvinfer1::DataType::kFLOAT;
        if (!logits)
        {
            std::printf("%s:", name.c_str());
            for (int32_t d = 0; d < out.mDims.nbDims; ++d)
                std::printf(" %lld", static_cast<long long>(out.mDims.d[d]));
            std::printf("\n");
            continue;
        }
        int64_t const batch = out.mDims.d[0];
        int64_t const classes = out.mDims.d[1];
        std::vector<float> host(static_cast<size_t>(volume(out.mDims)));
        CHECK_CUDA(cudaMemcpy(host.data(), out.mPtr, host.size() * sizeof(float), cudaMemcpyDeviceToHost));
        for (int64_t b = 0; b < batch; ++b)
        {
            float const* row = host.data() + b * classes;
            std::vector<int64_t> idx(static_cast<size_t>(classes));
            std::iota(idx.begin(), idx.end(), 0);
            int64_t const top = std::min<int64_t>(5, classes);
            std::partial_sort(idx.begin(), idx.begin() + top, idx.end(), [row](int64_t x, int64_t y) { return row[x] > row[y]; });
            std::printf("image %lld:", static_cast<long long>(b));
            for (int64_t k = 0; k < top; ++k)
                std::printf(" %lld (%.3f)", static_cast<long long>(idx[k]), row[idx[k]]);
            std::printf("\n");
        }
    }
    cudaStreamDestroy(stream);
    cudaFree(dIn);
    return 0;
}
