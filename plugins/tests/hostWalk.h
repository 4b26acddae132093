/*
 * The walk TensorRT's builder and runtime make through an IPluginV3, played by trtHost.h.
 */
#pragma once

#include "trtHost.h"

#include <cstdint>
#include <string>
#include <vector>

namespace saint_host
{

using CheckFn = void (*)(bool ok, char const* what);

//! Build-phase and runtime-phase checks that need no kernels (shapes, static dims for fixed_r,
//! formats, workspace, clone/attach, onShapeChange, limits at enqueue, serialization).
void walkChecks(CheckFn check);

//! Run the case Python wrote into ``dir`` through the build phase, enqueue, serialize, the runtime
//! phase and enqueue again; compare with the expected outputs. 0 = equal, 1 = mismatch or error,
//! 77 = built without the CPU kernel runtime (enqueue skipped after the non-kernel steps passed).
int runCase(char const* dir);

//! The same for a per-sample case (per_sample = 1: the mask in, mask_out and the size tensor out);
//! also checks its build-phase shapes, types and formats. Same return codes.
int runPerSampleCase(char const* dir);

//! A PluginFieldCollection serialized to bytes and read back into storage it owns (what an
//! engine plan does between the build and the runtime phase).
class SerializedFields
{
public:
    explicit SerializedFields(nvinfer1::PluginFieldCollection const& fc);
    nvinfer1::PluginFieldCollection const* collection() { return &mCollection; }
    size_t bytes() const { return mBlob.size(); }

private:
    std::vector<char> mBlob;
    std::vector<std::string> mNames;
    std::vector<std::vector<char>> mData;
    std::vector<nvinfer1::PluginField> mFields;
    nvinfer1::PluginFieldCollection mCollection{};
};

} // namespace saint_host
