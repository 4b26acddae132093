"""pybind11-style enums: members are not ints (int() and .value give the number), carry .name,
compare by class and value, and the class has __members__. Values are the real bindings' (10.13
stubs; TensorRT 11's renumbered BuilderFlag and NetworkDefinitionCreationFlag from its headers)."""

from __future__ import annotations

from ._profile import V11


class _Enum:
    __slots__ = ("_name", "_value")
    __members__: dict = {}

    def __new__(cls, value):
        for member in cls.__members__.values():
            if member._value == int(value):
                return member
        raise ValueError(f"{value} is not a valid {cls.__name__}")

    @classmethod
    def _make(cls, name: str, value: int):
        member = object.__new__(cls)
        member._name, member._value = name, value
        return member

    @property
    def name(self) -> str:
        return self._name

    @property
    def value(self) -> int:
        return self._value

    def __int__(self) -> int:
        return self._value

    def __index__(self) -> int:
        return self._value

    def __hash__(self) -> int:
        return hash((type(self).__name__, self._value))

    def __eq__(self, other) -> bool:
        return type(other) is type(self) and other._value == self._value

    def __ne__(self, other) -> bool:
        return not self.__eq__(other)

    def __repr__(self) -> str:
        return f"<{type(self).__name__}.{self._name}: {self._value}>"

    def __str__(self) -> str:
        return f"{type(self).__name__}.{self._name}"

    def __getstate__(self):
        return self._value

    def __setstate__(self, state):
        raise TypeError("emulated enums are not picklable")


def enum(name: str, members: dict[str, int], extra: dict | None = None) -> type:
    cls = type(name, (_Enum,), {"__slots__": (), **(extra or {})})
    cls.__members__ = {}
    for member, value in members.items():
        cls.__members__[member] = cls._make(member, value)
        setattr(cls, member, cls.__members__[member])
    return cls


_ITEMSIZE = {"FLOAT": 4, "HALF": 2, "INT8": 1, "INT32": 4, "BOOL": 1, "UINT8": 1, "FP8": 1, "BF16": 2, "INT64": 8}
DataType = enum("DataType", {"FLOAT": 0, "HALF": 1, "INT8": 2, "INT32": 3, "BOOL": 4, "UINT8": 5, "FP8": 6, "BF16": 7,
                             "INT64": 8, "INT4": 9, "FP4": 10, "E8M0": 11},
                {"itemsize": property(lambda self: _ITEMSIZE.get(self._name, 0))})
TensorIOMode = enum("TensorIOMode", {"NONE": 0, "INPUT": 1, "OUTPUT": 2})
TensorFormat = enum("TensorFormat", {"LINEAR": 0, "CHW2": 1, "HWC8": 2, "CHW4": 3, "CHW16": 4, "CHW32": 5, "DHWC8": 6,
                                     "CDHW32": 7, "HWC": 8, "DLA_LINEAR": 9, "DLA_HWC4": 10, "HWC16": 11, "DHWC": 12})
TensorLocation = enum("TensorLocation", {"DEVICE": 0, "HOST": 1})
MemoryPoolType = enum("MemoryPoolType", {"WORKSPACE": 0, "DLA_MANAGED_SRAM": 1, "DLA_LOCAL_DRAM": 2, "DLA_GLOBAL_DRAM": 3,
                                         "TACTIC_DRAM": 4, "TACTIC_SHARED_MEMORY": 5})
TensorRTPhase = enum("TensorRTPhase", {"BUILD": 0, "RUNTIME": 1})
PluginFieldType = enum("PluginFieldType", {"FLOAT16": 0, "FLOAT32": 1, "FLOAT64": 2, "INT8": 3, "INT16": 4, "INT32": 5,
                                           "CHAR": 6, "DIMS": 7, "UNKNOWN": 8, "BF16": 9, "INT64": 10, "FP8": 11, "INT4": 12,
                                           "FP4": 13})
ProfilingVerbosity = enum("ProfilingVerbosity", {"LAYER_NAMES_ONLY": 0, "NONE": 1, "DETAILED": 2})
DeviceType = enum("DeviceType", {"GPU": 0, "DLA": 1})
EngineCapability = enum("EngineCapability", {"STANDARD": 0, "SAFETY": 1, "DLA_STANDALONE": 2})
ExecutionContextAllocationStrategy = enum("ExecutionContextAllocationStrategy",
                                          {"STATIC": 0, "ON_PROFILE_CHANGE": 1, "USER_MANAGED": 2})
OnnxParserFlag = enum("OnnxParserFlag", {"NATIVE_INSTANCENORM": 0, "ENABLE_UINT8_AND_ASYMMETRIC_QUANTIZATION_DLA": 1})
LayerType = enum("LayerType", {"IDENTITY": 20, "PLUGIN_V3": 46})
TacticSource = enum("TacticSource", {"EDGE_MASK_CONVOLUTIONS": 3, "JIT_CONVOLUTIONS": 4} if V11 else
                    {"CUBLAS": 0, "CUBLAS_LT": 1, "CUDNN": 2, "EDGE_MASK_CONVOLUTIONS": 3, "JIT_CONVOLUTIONS": 4})
PreviewFeature = enum("PreviewFeature", {"ALIASED_PLUGIN_IO_10_03": 1, "RUNTIME_ACTIVATION_RESIZE_10_10": 2} if V11 else
                      {"PROFILE_SHARING_0806": 0, "ALIASED_PLUGIN_IO_10_03": 1, "RUNTIME_ACTIVATION_RESIZE_10_10": 2})

if V11:  # NvInfer.h 11.1: precision flags gone, the rest renumbered
    BuilderFlag = enum("BuilderFlag", {
        "DEBUG": 2, "GPU_FALLBACK": 3, "REFIT": 4, "DISABLE_TIMING_CACHE": 5, "TF32": 6, "SPARSE_WEIGHTS": 7,
        "SAFETY_SCOPE": 8, "DIRECT_IO": 11, "VERSION_COMPATIBLE": 12, "EXCLUDE_LEAN_RUNTIME": 13,
        "ERROR_ON_TIMING_CACHE_MISS": 15, "DISABLE_COMPILATION_CACHE": 17, "STRIP_PLAN": 18, "REFIT_IDENTICAL": 19,
        "WEIGHT_STREAMING": 20, "REFIT_INDIVIDUAL": 22, "STRICT_NANS": 23, "MONITOR_MEMORY": 24,
        "EDITABLE_TIMING_CACHE": 26, "DISTRIBUTIVE_INDEPENDENCE": 27})
    NetworkDefinitionCreationFlag = enum("NetworkDefinitionCreationFlag", {
        "STRONGLY_TYPED": 0, "PREFER_JIT_PYTHON_PLUGINS": 1, "PREFER_AOT_PYTHON_PLUGINS": 2})
else:
    BuilderFlag = enum("BuilderFlag", {
        "FP16": 0, "INT8": 1, "DEBUG": 2, "GPU_FALLBACK": 3, "REFIT": 4, "DISABLE_TIMING_CACHE": 5, "TF32": 6,
        "SPARSE_WEIGHTS": 7, "SAFETY_SCOPE": 8, "OBEY_PRECISION_CONSTRAINTS": 9, "PREFER_PRECISION_CONSTRAINTS": 10,
        "DIRECT_IO": 11, "REJECT_EMPTY_ALGORITHMS": 12, "VERSION_COMPATIBLE": 13, "EXCLUDE_LEAN_RUNTIME": 14, "FP8": 15,
        "ERROR_ON_TIMING_CACHE_MISS": 16, "BF16": 17, "DISABLE_COMPILATION_CACHE": 18, "WEIGHTLESS": 19,
        "REFIT_IDENTICAL": 20, "WEIGHT_STREAMING": 21, "INT4": 22, "REFIT_INDIVIDUAL": 23, "STRICT_NANS": 24,
        "MONITOR_MEMORY": 25, "FP4": 26, "EDITABLE_TIMING_CACHE": 27, "DISTRIBUTIVE_INDEPENDENCE": 28})
    BuilderFlag.STRIP_PLAN = BuilderFlag.WEIGHTLESS  # an alias in the 10.13 bindings
    NetworkDefinitionCreationFlag = enum("NetworkDefinitionCreationFlag", {
        "EXPLICIT_BATCH": 0, "STRONGLY_TYPED": 1, "PREFER_JIT_PYTHON_PLUGINS": 2, "PREFER_AOT_PYTHON_PLUGINS": 3})
