/*
 * saint_runner: load libsaint_plugins.so and a SAINT TensorRT engine, run a float32 .npy batch
 * [B, 3, H, W], print the top-5 classes per image. The template for embedding an engine in a
 * C++ service.
 *
 *   saint_runner model.plan images.npy [--plugin path/to/libsaint_plugins.so]
 *
 * Exit codes: 0 ok, 2 usage, 4 unreadable input, 5 plugin/engine cannot be loaded, 7 inference failed.
 */
#include <NvInferRuntime.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <numeric>
#include <sstream>
#include <string>
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
    std::string pluginPath = "libsaint_plugins.so";
    // a version-compatible engine (saint-export --engine --version-compatible) carries the plugin
    // library inside the plan; TensorRT refuses to deserialize it unless host code is allowed
    bool versionCompatible = false;
    for (int i = 3; i < argc; ++i)
    {
        if (std::string(argv[i]) == "--plugin" && i + 1 < argc)
            pluginPath = argv[++i];
        else if (std::string(argv[i]) == "--version-compatible")
            versionCompatible = true;
    }

    Logger logger;
    std::unique_ptr<nvinfer1::IRuntime> runtime{nvinfer1::createInferRuntime(logger)};
    if (!runtime)
        return std::cerr << "error: cannot create the TensorRT runtime\n", 5;
    if (versionCompatible)
        runtime->setEngineHostCodeAllowed(true); // runs the plugin code embedded in the plan: only for plans you trust
    // engines built with the plugin serialized inside do not need the library; load it if present
    if (std::ifstream(pluginPath).good() && runtime->getPluginRegistry().loadLibrary(pluginPath.c_str()) == nullptr)
        return std::cerr << "error: cannot load plugin library " << pluginPath << "\n", 5;

    std::ifstream planFile(planPath, std::ios::binary);
    if (!planFile)
        return std::cerr << "error: cannot read engine " << planPath << "\n", 4;
    std::vector<char> plan((std::istreambuf_iterator<char>(planFile)), std::istreambuf_iterator<char>());
    std::unique_ptr<nvinfer1::ICudaEngine> engine{runtime->deserializeCudaEngine(plan.data(), plan.size())};
    if (!engine)
        return std::cerr << "error: cannot deserialize " << planPath << " (TensorRT version, GPU or plugin mismatch;"
                            " a version-compatible engine needs --version-compatible)\n", 5;
    std::unique_ptr<nvinfer1::IExecutionContext> context{engine->createExecutionContext()};

    Npy input;
    std::string error;
    if (!readNpy(npyPath, input, error))
        return std::cerr << "error: " << error << "\n", 4;
    if (input.shape.size() != 4)
        return std::cerr << "error: expected images [B, 3, H, W]\n", 4;

    std::string inName, outName;
    for (int32_t i = 0; i < engine->getNbIOTensors(); ++i)
    {
        char const* name = engine->getIOTensorName(i);
        (engine->getTensorIOMode(name) == nvinfer1::TensorIOMode::kINPUT ? inName : outName) = name;
    }
    nvinfer1::Dims inDims{};
    inDims.nbDims = 4;
    for (int32_t d = 0; d < 4; ++d)
        inDims.d[d] = input.shape[d];
    if (!context->setInputShape(inName.c_str(), inDims))
        return std::cerr << "error: input shape outside the engine's profile\n", 4;
    nvinfer1::Dims const outDims = context->getTensorShape(outName.c_str());
    int64_t const batch = outDims.d[0];
    int64_t const classes = outDims.d[outDims.nbDims - 1];

    void* dIn = nullptr;
    void* dOut = nullptr;
    CHECK_CUDA(cudaMalloc(&dIn, input.data.size() * sizeof(float)));
    CHECK_CUDA(cudaMalloc(&dOut, static_cast<size_t>(batch * classes) * sizeof(float)));
    CHECK_CUDA(cudaMemcpy(dIn, input.data.data(), input.data.size() * sizeof(float), cudaMemcpyHostToDevice));
    context->setTensorAddress(inName.c_str(), dIn);
    context->setTensorAddress(outName.c_str(), dOut);
    cudaStream_t stream;
    CHECK_CUDA(cudaStreamCreate(&stream));
    if (!context->enqueueV3(stream))
        return std::cerr << "error: enqueueV3 failed\n", 7;
    std::vector<float> logits(static_cast<size_t>(batch * classes));
    CHECK_CUDA(cudaMemcpyAsync(logits.data(), dOut, logits.size() * sizeof(float), cudaMemcpyDeviceToHost, stream));
    CHECK_CUDA(cudaStreamSynchronize(stream));

    for (int64_t b = 0; b < batch; ++b)
    {
        float const* row = logits.data() + b * classes;
        std::vector<int64_t> idx(static_cast<size_t>(classes));
        std::iota(idx.begin(), idx.end(), 0);
        std::partial_sort(idx.begin(), idx.begin() + 5, idx.end(), [row](int64_t x, int64_t y) { return row[x] > row[y]; });
        std::printf("image %lld:", static_cast<long long>(b));
        for (int k = 0; k < 5; ++k)
            std::printf(" %lld (%.3f)", static_cast<long long>(idx[k]), row[idx[k]]);
        std::printf("\n");
    }
    cudaStreamDestroy(stream);
    cudaFree(dIn);
    cudaFree(dOut);
    return 0;
}
