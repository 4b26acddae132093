/*
 * SaintTokenDrop plugin fields: parsing and validation of the creator's PluginFieldCollection, and
 * the field list the plugin serializes. Every field is validated; errors name the field.
 */
#include "saintTokenDropPlugin.h"

#include <cmath>
#include <cstring>

using namespace nvinfer1;

namespace saint
{
namespace
{
bool readScalar(PluginField const& f, double& out, bool wantInt, std::string& error)
{
    if (f.length != 1 || f.data == nullptr)
    {
        error = std::string("field '") + f.name + "' must hold exactly one value";
        return false;
    }
    switch (f.type)
    {
    case PluginFieldType::kFLOAT32: out = *static_cast<float const*>(f.data); break;
    case PluginFieldType::kFLOAT64: out = *static_cast<double const*>(f.data); break;
    case PluginFieldType::kINT32: out = *static_cast<int32_t const*>(f.data); break;
    case PluginFieldType::kINT64: out = static_cast<double>(*static_cast<int64_t const*>(f.data)); break;
    default:
        error = std::string("field '") + f.name + "' has an unsupported type";
        return false;
    }
    bool const isInt = f.type == PluginFieldType::kINT32 || f.type == PluginFieldType::kINT64;
    if (wantInt != isInt)
    {
        error = std::string("field '") + f.name + (wantInt ? "' must be an integer (int32 or int64)" : "' must be a float (float32 or float64)");
        return false;
    }
    return true;
}

//! Index of ``name`` in kFIELD_NAMES, or -1.
int32_t fieldIndex(char const* name)
{
    for (int32_t j = 0; j < kNB_FIELDS; ++j)
        if (std::strcmp(name, kFIELD_NAMES[j]) == 0)
            return j;
    return -1;
}

bool rangeError(std::string& error, char const* field, char const* range)
{
    error = std::string("field '") + field + "' must be " + range;
    return false;
}

//! Range-check value ``v`` of field ``which`` and store it in ``attrs``.
bool storeField(int32_t which, double v, TokenDropAttrs& attrs, std::string& error)
{
    switch (which)
    {
    case 0:
        if (!(v >= -1.0 && v <= 1.0)) // also rejects NaN
            return rangeError(error, kFIELD_THRESHOLD, "in [-1, 1]");
        attrs.threshold = static_cast<float>(v);
        return true;
    case 1:
        if (v < 1 || v > 1e9)
            return rangeError(error, kFIELD_K, ">= 1");
        attrs.k = static_cast<int32_t>(v);
        return true;
    case 2:
        if (!std::isfinite(v) || std::fabs(v) > 3.4e38)
            return rangeError(error, kFIELD_GAMMA, "finite");
        attrs.gamma = static_cast<float>(v);
        return true;
    case 3:
        if (v < 0 || v > kMaxTokens)
            return rangeError(error, kFIELD_PROTECTED, "in [0, 8192]");
        attrs.protectedTokens = static_cast<int32_t>(v);
        return true;
    case 4:
        if (v < -1 || v > kMaxTokens)
            return rangeError(error, kFIELD_FIXED_R, "-1 (vote) or in [0, 8192]");
        attrs.fixedR = static_cast<int32_t>(v);
        return true;
    case 5:
        if (v != 0 && v != 1)
            return rangeError(error, kFIELD_PER_SAMPLE, "0 (batch vote) or 1 (per-sample vote)");
        attrs.perSample = static_cast<int32_t>(v);
        return true;
    default:
        if (v < 0 || v > kMaxTokens)
            return rangeError(error, kFIELD_MAX_TOKENS, "0 (unknown) or in [1, 8192]");
        attrs.maxTokens = static_cast<int32_t>(v);
        return true;
    }
}

//! Parse one field into ``attrs``; unknown fields are ignored with a warning.
bool parseOneField(PluginField const& f, bool (&seen)[kNB_FIELDS], TokenDropAttrs& attrs, std::string& error)
{
    if (f.name == nullptr)
    {
        error = "a field has no name";
        return false;
    }
    int32_t const which = fieldIndex(f.name);
    if (which < 0)
    {
        if (std::strcmp(f.name, "plugin_version") != 0 && std::strcmp(f.name, "plugin_namespace") != 0)
            logWarning(std::string("ignoring unknown field '") + f.name + "'");
        return true;
    }
    if (seen[which])
    {
        error = std::string("field '") + f.name + "' given twice";
        return false;
    }
    seen[which] = true;
    double v = 0;
    bool const wantInt = which == 1 || which >= 3;
    return readScalar(f, v, wantInt, error) && storeField(which, v, attrs, error);
}

} // namespace

bool parseFields(PluginFieldCollection const* fc, TokenDropAttrs& attrs, std::string& error) noexcept
{
    try
    {
        if (fc == nullptr || fc->nbFields < 0 || (fc->nbFields > 0 && fc->fields == nullptr))
        {
            error = "no fields given";
            return false;
        }
        bool seen[kNB_FIELDS] = {};
        for (int32_t i = 0; i < fc->nbFields; ++i)
            if (!parseOneField(fc->fields[i], seen, attrs, error))
                return false;
        for (int32_t j = 0; j < kNB_REQUIRED_FIELDS; ++j)
        {
            if (!seen[j])
            {
                error = std::string("missing field '") + kFIELD_NAMES[j] + "'";
                return false;
            }
        }
        return true;
    }
    catch (std::exception const& e)
    {
        error = e.what();
        return false;
    }
    catch (...)
    {
        error = "unknown exception while parsing fields";
        return false;
    }
}

std::vector<PluginField> tokenDropFields(TokenDropAttrs* attrs)
{
    bool const withData = attrs != nullptr;
    return {
        PluginField(kFIELD_THRESHOLD, withData ? &attrs->threshold : nullptr, PluginFieldType::kFLOAT32, 1),
        PluginField(kFIELD_K, withData ? &attrs->k : nullptr, PluginFieldType::kINT32, 1),
        PluginField(kFIELD_GAMMA, withData ? &attrs->gamma : nullptr, PluginFieldType::kFLOAT32, 1),
        PluginField(kFIELD_PROTECTED, withData ? &attrs->protectedTokens : nullptr, PluginFieldType::kINT32, 1),
        PluginField(kFIELD_FIXED_R, withData ? &attrs->fixedR : nullptr, PluginFieldType::kINT32, 1),
        PluginField(kFIELD_PER_SAMPLE, withData ? &attrs->perSample : nullptr, PluginFieldType::kINT32, 1),
        PluginField(kFIELD_MAX_TOKENS, withData ? &attrs->maxTokens : nullptr, PluginFieldType::kINT32, 1),
    };
}

} // namespace saint
