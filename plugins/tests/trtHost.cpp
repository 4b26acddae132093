/*
 * The TensorRT stand-in of trtHost.h: expression builder, dimension expressions, plugin
 * registry (with loadLibrary) and logger. No libnvinfer, no GPU.
 */
#include "trtHost.h"

#include <cstdio>
#include <cstring>
#include <dlfcn.h>

using namespace nvinfer1;

namespace saint_host
{

void HostLogger::log(Severity severity, AsciiChar const* msg) noexcept
{
    std::string const line = msg != nullptr ? msg : "";
    all.push_back(line);
    if (severity <= Severity::kERROR)
        errors.push_back(line);
    if (echo)
        std::fprintf(stderr, "[host log %d] %s\n", static_cast<int>(severity), line.c_str());
}

DimExpr::DimExpr(Kind kind_, int64_t value_, std::string symbol_, DimensionOperation op_, DimExpr const* a_, DimExpr const* b_)
    : kind(kind_)
    , value(value_)
    , symbol(std::move(symbol_))
    , op(op_)
    , a(a_)
    , b(b_)
    , mImplStorage(*this)
{
    mImpl = &mImplStorage;
}

namespace
{
bool apply(DimensionOperation op, int64_t x, int64_t y, int64_t& out)
{
    switch (op)
    {
    case DimensionOperation::kSUM: out = x + y; return true;
    case DimensionOperation::kPROD: out = x * y; return true;
    case DimensionOperation::kMAX: out = x > y ? x : y; return true;
    case DimensionOperation::kMIN: out = x < y ? x : y; return true;
    case DimensionOperation::kSUB: out = x - y; return true;
    case DimensionOperation::kEQUAL: out = x == y; return true;
    case DimensionOperation::kLESS: out = x < y; return true;
    case DimensionOperation::kFLOOR_DIV:
        if (y == 0)
            return false;
        out = x / y - ((x % y != 0) && ((x < 0) != (y < 0)));
        return true;
    case DimensionOperation::kCEIL_DIV:
        if (y == 0)
            return false;
        out = x / y + ((x % y != 0) && ((x < 0) == (y < 0)));
        return true;
    }
    return false;
}

char const* opName(DimensionOperation op)
{
    static char const* const names[] = {"+", "*", "max", "min", "-", "==", "<", "floordiv", "ceildiv"};
    return names[static_cast<int32_t>(op)];
}
} // namespace

bool DimExpr::evaluate(Bindings const& bindings, int64_t& out) const
{
    switch (kind)
    {
    case Kind::kCONSTANT: out = value; return true;
    case Kind::kSYMBOL:
    {
        auto it = bindings.symbols.find(symbol);
        return it != bindings.symbols.end() && (out = it->second, true);
    }
    case Kind::kSIZE_TENSOR:
    {
        auto it = bindings.sizeTensors.find(static_cast<int32_t>(value));
        return it != bindings.sizeTensors.end() && (out = it->second, true);
    }
    case Kind::kOPERATION:
    {
        int64_t x = 0;
        int64_t y = 0;
        return a->evaluate(bindings, x) && b->evaluate(bindings, y) && apply(op, x, y, out);
    }
    }
    return false;
}

std::string DimExpr::str() const
{
    switch (kind)
    {
    case Kind::kCONSTANT: return std::to_string(value);
    case Kind::kSYMBOL: return symbol;
    case Kind::kSIZE_TENSOR: return "size(out" + std::to_string(value) + ")";
    case Kind::kOPERATION: return std::string(opName(op)) + "(" + a->str() + ", " + b->str() + ")";
    }
    return "?";
}

ExprBuilder::ExprBuilder()
    : mImplStorage(*this)
{
    mImpl = &mImplStorage;
}

DimExpr const* ExprBuilder::own(std::unique_ptr<DimExpr> e)
{
    mExprs.push_back(std::move(e));
    return mExprs.back().get();
}

DimExpr const* ExprBuilder::constant(int64_t v)
{
    return own(std::make_unique<DimExpr>(DimExpr::Kind::kCONSTANT, v, "", DimensionOperation::kSUM, nullptr, nullptr));
}

DimExpr const* ExprBuilder::symbol(std::string const& name)
{
    return own(std::make_unique<DimExpr>(DimExpr::Kind::kSYMBOL, 0, name, DimensionOperation::kSUM, nullptr, nullptr));
}

DimExpr const* ExprBuilder::operation(DimensionOperation op, DimExpr const& a, DimExpr const& b)
{
    int64_t folded = 0;
    if (a.kind == DimExpr::Kind::kCONSTANT && b.kind == DimExpr::Kind::kCONSTANT)
    {
        if (!apply(op, a.value, b.value, folded))
        {
            ++badCalls;
            return nullptr;
        }
        return constant(folded);
    }
    return own(std::make_unique<DimExpr>(DimExpr::Kind::kOPERATION, 0, "", op, &a, &b));
}

DimExpr const* ExprBuilder::sizeTensor(int32_t outputIndex, DimExpr const& opt, DimExpr const& upper)
{
    if (declared.count(outputIndex) != 0)
    {
        ++badCalls; // TensorRT allows one declaration per output
        return nullptr;
    }
    auto const* e = own(std::make_unique<DimExpr>(DimExpr::Kind::kSIZE_TENSOR, outputIndex, "", DimensionOperation::kSUM, &opt, &upper));
    declared[outputIndex] = e;
    return e;
}

IDimensionExpr const* ExprBuilder::Impl::operation(
    DimensionOperation op, IDimensionExpr const& first, IDimensionExpr const& second)
{
    // every expression a plugin sees was made by this builder (input dims included)
    return mOwner.operation(op, static_cast<DimExpr const&>(first), static_cast<DimExpr const&>(second));
}

IDimensionExpr const* ExprBuilder::Impl::declareSizeTensor(
    int32_t outputIndex, IDimensionExpr const& opt, IDimensionExpr const& upper)
{
    return mOwner.sizeTensor(outputIndex, static_cast<DimExpr const&>(opt), static_cast<DimExpr const&>(upper));
}

namespace
{
//! (name, version, namespace) of a V3 creator; false for other creator kinds.
bool creatorKey(IPluginCreatorInterface const& creator, char const* nsOverride, std::string& key)
{
    InterfaceInfo const info = creator.getInterfaceInfo();
    if (info.kind == nullptr || std::strcmp(info.kind, "PLUGIN CREATOR_V3ONE") != 0)
        return false;
    auto const& c = static_cast<IPluginCreatorV3One const&>(creator);
    auto& mc = const_cast<IPluginCreatorV3One&>(c);
    char const* ns = nsOverride != nullptr ? nsOverride : mc.getPluginNamespace();
    key = std::string(mc.getPluginName()) + "|" + mc.getPluginVersion() + "|" + (ns != nullptr ? ns : "");
    return true;
}
} // namespace

HostRegistry::~HostRegistry() noexcept
{
    for (auto& lib : mLibraries)
        dlclose(lib.first);
}

IPluginCreator* const* HostRegistry::getPluginCreatorList(int32_t* const n) const noexcept
{
    if (n != nullptr)
        *n = 0;
    return nullptr;
}

bool HostRegistry::reentrant(char const* call) noexcept
{
    if (!mInLoadLibrary)
        return false;
    ++reentrantCalls;
    mLogger->log(ILogger::Severity::kERROR,
        (std::string(call) + " called from inside loadLibrary: the registry is locked there (TensorRT deadlocks)").c_str());
    return true;
}

bool HostRegistry::registerCreator(IPluginCreatorInterface& creator, AsciiChar const* const ns) noexcept
{
    if (reentrant("registerCreator"))
        return false;
    std::string key;
    if (!creatorKey(creator, ns, key))
    {
        mLogger->log(ILogger::Severity::kERROR, "registerCreator: not an IPluginCreatorV3One");
        return false;
    }
    for (auto const& e : mEntries)
    {
        if (e.key == key)
        {
            ++duplicates;
            mLogger->log(ILogger::Severity::kERROR, ("Plugin creator already registered - " + key).c_str());
            return false;
        }
    }
    mEntries.push_back({key, &creator});
    ++registrations;
    return true;
}

IPluginCreatorInterface* const* HostRegistry::getAllCreators(int32_t* const n) const noexcept
{
    mList.clear();
    for (auto const& e : mEntries)
        mList.push_back(e.creator);
    if (n != nullptr)
        *n = static_cast<int32_t>(mList.size());
    return mList.data();
}

IPluginCreatorInterface* HostRegistry::getCreator(
    AsciiChar const* const name, AsciiChar const* const version, AsciiChar const* const ns) noexcept
{
    if (reentrant("getCreator"))
        return nullptr;
    std::string const key = std::string(name) + "|" + version + "|" + (ns != nullptr ? ns : "");
    for (auto const& e : mEntries)
        if (e.key == key)
            return e.creator;
    return nullptr;
}

bool HostRegistry::deregisterCreator(IPluginCreatorInterface const& creator) noexcept
{
    if (reentrant("deregisterCreator"))
        return false;
    for (auto it = mEntries.begin(); it != mEntries.end(); ++it)
    {
        if (it->creator == &creator)
        {
            mEntries.erase(it);
            return true;
        }
    }
    return false;
}

int32_t HostRegistry::count(char const* name, char const* version, char const* ns) const
{
    std::string const key = std::string(name) + "|" + version + "|" + ns;
    int32_t c = 0;
    for (auto const& e : mEntries)
        c += e.key == key;
    return c;
}

IPluginRegistry::PluginLibraryHandle HostRegistry::loadLibrary(AsciiChar const* pluginPath) noexcept
{
    // what IPluginRegistry::loadLibrary does: dlopen, setLoggerFinder, register every creator
    // returned by getCreators (IPluginCreatorInterface, TensorRT >= 10)
    // what the library does until its creators are registered happens under the registry's lock
    mInLoadLibrary = true;
    void* handle = dlopen(pluginPath, RTLD_LAZY | RTLD_LOCAL);
    if (handle == nullptr)
    {
        mInLoadLibrary = false;
        mLogger->log(ILogger::Severity::kERROR, (std::string("loadLibrary: ") + dlerror()).c_str());
        return nullptr;
    }
    using SetFinder = void (*)(ILoggerFinder*);
    using GetCreators = IPluginCreatorInterface* const* (*) (int32_t&);
    auto setFinder = reinterpret_cast<SetFinder>(dlsym(handle, "setLoggerFinder"));
    auto getCreators = reinterpret_cast<GetCreators>(dlsym(handle, "getCreators"));
    if (getCreators == nullptr)
    {
        mInLoadLibrary = false;
        mLogger->log(ILogger::Severity::kERROR, "loadLibrary: no getCreators in the library");
        dlclose(handle);
        return nullptr;
    }
    if (setFinder != nullptr)
        setFinder(&mFinder);
    int32_t n = 0;
    IPluginCreatorInterface* const* creators = getCreators(n);
    mInLoadLibrary = false;
    // TensorRT: "The call will fail and return nullptr if any of the plugins are already registered."
    for (int32_t i = 0; i < n; ++i)
    {
        std::string key;
        if (creators[i] != nullptr && creatorKey(*creators[i], nullptr, key))
            for (auto const& e : mEntries)
                if (e.key == key)
                {
                    ++duplicates;
                    mLogger->log(ILogger::Severity::kERROR, ("loadLibrary: plugin creator already registered - " + key).c_str());
                    dlclose(handle);
                    return nullptr;
                }
    }
    auto& mine = mLibraries[handle];
    for (int32_t i = 0; i < n; ++i)
        if (creators[i] != nullptr && registerCreator(*creators[i], nullptr))
            mine.push_back(creators[i]);
    return handle;
}

void HostRegistry::deregisterLibrary(PluginLibraryHandle handle) noexcept
{
    auto it = mLibraries.find(handle);
    if (it == mLibraries.end())
        return;
    for (auto* c : it->second)
        deregisterCreator(*c);
    mLibraries.erase(it);
    dlclose(handle);
}

} // namespace saint_host
