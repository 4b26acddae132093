/*
 * A stand-in for the parts of TensorRT a plugin talks to, with no libnvinfer:
 *   - DimExpr / ExprBuilder: IDimensionExpr and IExprBuilder forward to apiv::VDimensionExpr /
 *     apiv::VExprBuilder through their protected mImpl (NvInferImpl.h); these classes supply it.
 *     Operations on constants fold to constants (as TensorRT does); other expressions stay
 *     symbolic and are evaluated once the input dims (and size tensors) are known.
 *   - HostRegistry: an IPluginRegistry (registerCreator, getCreator, loadLibrary through
 *     getCreators / setLoggerFinder, ...) that counts duplicate registrations.
 *   - HostLogger / HostLoggerFinder: an ILogger that keeps the messages.
 * Used by saint_plugin_host_test and by the stand-in libnvinfer (nvinferStub.cpp).
 */
#pragma once

#include <NvInferImpl.h>
#include <NvInferRuntime.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

namespace saint_host
{

class HostLogger : public nvinfer1::ILogger
{
public:
    void log(Severity severity, nvinfer1::AsciiChar const* msg) noexcept override;
    std::vector<std::string> errors;
    std::vector<std::string> all;
    bool echo{false};
    std::string lastError() const { return errors.empty() ? std::string() : errors.back(); }
};

class HostLoggerFinder : public nvinfer1::ILoggerFinder
{
public:
    explicit HostLoggerFinder(nvinfer1::ILogger* logger) : mLogger(logger) {}
    nvinfer1::ILogger* findLogger() override { return mLogger; }

private:
    nvinfer1::ILogger* mLogger;
};

//! Values of the symbolic dims (by name) and of the size tensors (by output index).
struct Bindings
{
    std::map<std::string, int64_t> symbols;
    std::map<int32_t, int64_t> sizeTensors;
};

class DimExpr : public nvinfer1::IDimensionExpr
{
public:
    enum class Kind { kCONSTANT, kSYMBOL, kSIZE_TENSOR, kOPERATION };
    DimExpr(Kind kind, int64_t value, std::string symbol, nvinfer1::DimensionOperation op, DimExpr const* a,
        DimExpr const* b);
    ~DimExpr() noexcept override = default;
    //! The value under ``bindings``; false when a symbol or size tensor is unbound.
    bool evaluate(Bindings const& bindings, int64_t& value) const;
    std::string str() const;

    Kind kind;
    int64_t value;          // constant value, or the size tensor's output index
    std::string symbol;
    nvinfer1::DimensionOperation op;
    DimExpr const* a;       // operation operands, or the size tensor's (opt, upper)
    DimExpr const* b;

private:
    class Impl : public nvinfer1::apiv::VDimensionExpr
    {
    public:
        explicit Impl(DimExpr const& owner) : mOwner(owner) {}
        bool isConstant() const override { return mOwner.kind == Kind::kCONSTANT; }
        int64_t getConstantValue() const override { return mOwner.kind == Kind::kCONSTANT ? mOwner.value : -1; }
        bool isSizeTensor() const override { return mOwner.kind == Kind::kSIZE_TENSOR; }

    private:
        DimExpr const& mOwner;
    };
    Impl mImplStorage;
};

class ExprBuilder : public nvinfer1::IExprBuilder
{
public:
    ExprBuilder();
    ~ExprBuilder() noexcept override = default;
    DimExpr const* constant(int64_t v);
    DimExpr const* symbol(std::string const& name);
    DimExpr const* operation(nvinfer1::DimensionOperation op, DimExpr const& a, DimExpr const& b);
    DimExpr const* sizeTensor(int32_t outputIndex, DimExpr const& opt, DimExpr const& upper);
    //! Size tensors declared through declareSizeTensor: output index -> expression.
    std::map<int32_t, DimExpr const*> declared;
    int32_t badCalls{0}; // calls with foreign or invalid arguments

private:
    class Impl : public nvinfer1::apiv::VExprBuilder
    {
    public:
        explicit Impl(ExprBuilder& owner) : mOwner(owner) {}
        nvinfer1::IDimensionExpr const* constant(int64_t value) override { return mOwner.constant(value); }
        nvinfer1::IDimensionExpr const* operation(nvinfer1::DimensionOperation op, nvinfer1::IDimensionExpr const& first,
            nvinfer1::IDimensionExpr const& second) override;
        nvinfer1::IDimensionExpr const* declareSizeTensor(
            int32_t outputIndex, nvinfer1::IDimensionExpr const& opt, nvinfer1::IDimensionExpr const& upper) override;

    private:
        ExprBuilder& mOwner;
    };
    DimExpr const* own(std::unique_ptr<DimExpr> e);
    std::vector<std::unique_ptr<DimExpr>> mExprs;
    Impl mImplStorage;
};

//! An IPluginRegistry like TensorRT's: one creator per (name, version, namespace); a second
//! registration of the same key is refused and counted in ``duplicates``.
class HostRegistry : public nvinfer1::IPluginRegistry
{
public:
    explicit HostRegistry(nvinfer1::ILogger* logger) : mLogger(logger), mFinder(logger) {}
    ~HostRegistry() noexcept override;

    bool registerCreator(nvinfer1::IPluginCreator&, nvinfer1::AsciiChar const* const) noexcept override { return false; }
    nvinfer1::IPluginCreator* const* getPluginCreatorList(int32_t* const n) const noexcept override;
    nvinfer1::IPluginCreator* getPluginCreator(nvinfer1::AsciiChar const* const, nvinfer1::AsciiChar const* const,
        nvinfer1::AsciiChar const* const) noexcept override { return nullptr; }
    void setErrorRecorder(nvinfer1::IErrorRecorder* const) noexcept override {}
    nvinfer1::IErrorRecorder* getErrorRecorder() const noexcept override { return nullptr; }
    bool deregisterCreator(nvinfer1::IPluginCreator const&) noexcept override { return false; }
    bool isParentSearchEnabled() const override { return false; }
    void setParentSearchEnabled(bool const) override {}
    PluginLibraryHandle loadLibrary(nvinfer1::AsciiChar const* pluginPath) noexcept override;
    void deregisterLibrary(PluginLibraryHandle handle) noexcept override;
    bool registerCreator(nvinfer1::IPluginCreatorInterface& creator, nvinfer1::AsciiChar const* const ns) noexcept override;
    nvinfer1::IPluginCreatorInterface* const* getAllCreators(int32_t* const n) const noexcept override;
    nvinfer1::IPluginCreatorInterface* getCreator(nvinfer1::AsciiChar const* const name,
        nvinfer1::AsciiChar const* const version, nvinfer1::AsciiChar const* const ns) noexcept override;
    bool deregisterCreator(nvinfer1::IPluginCreatorInterface const& creator) noexcept override;
    nvinfer1::IPluginResource* acquirePluginResource(nvinfer1::AsciiChar const*, nvinfer1::IPluginResource*) noexcept override
    {
        return nullptr;
    }
    int32_t releasePluginResource(nvinfer1::AsciiChar const*) noexcept override { return -1; }
    nvinfer1::IPluginCreatorInterface* const* getAllCreatorsRecursive(int32_t* const n) noexcept override
    {
        return getAllCreators(n);
    }

    //! How many registered creators have this key (0 or 1: duplicates are refused).
    int32_t count(char const* name, char const* version, char const* ns) const;
    int32_t duplicates{0};
    int32_t registrations{0};
    //! Registry calls a library made from inside loadLibrary (its constructor or getCreators): TensorRT
    //! holds the registry's lock there, so each would deadlock or fail on a real runtime.
    int32_t reentrantCalls{0};

private:
    struct Entry
    {
        std::string key;
        nvinfer1::IPluginCreatorInterface* creator;
    };
    std::vector<Entry> mEntries;
    mutable std::vector<nvinfer1::IPluginCreatorInterface*> mList;
    std::map<void*, std::vector<nvinfer1::IPluginCreatorInterface*>> mLibraries;
    bool reentrant(char const* call) noexcept;
    nvinfer1::ILogger* mLogger;
    HostLoggerFinder mFinder;
    bool mInLoadLibrary{false};
};

} // namespace saint_host
