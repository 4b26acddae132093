"""An emulated TensorRT Python API for tests, importable as ``tensorrt`` (put tests/trt_emulator
on PYTHONPATH; set SAINT_TRT_EMULATOR_LIBDIR to the emulated/ folder of a CPU build of plugins/).

Its surface is a subset of the real bindings' (tests/test_trt_emulator.py checks every public name
against tensorrt-stubs==10.13.0.35.1, and profile 11 against TensorRT 11's removals): what a real
TensorRT would refuse with AttributeError is refused here too, so Polygraphy's real loaders and
TrtRunner take the paths they would take on a GPU. Plugins are real: the registry is the stand-in
libnvinfer's (plugins/tests/trtEmulator.cpp), plugin layers are created through the library's
creator and built through its build-phase methods, with the header contracts checked, and run by its
enqueue with the kernels on the CPU runtime. Standard ops run in onnxruntime. Device memory is host
memory (Polygraphy's CUDA calls go to the emulated libcudart.so). This is a test double for
saint-export's engine path, not TensorRT: it has no optimizer, no tactics, and no GPU.
"""

from __future__ import annotations

import builtins as _builtins
import ctypes
import tempfile
from pathlib import Path

import numpy as np
import onnx

from . import _native, _program
from ._enums import enum as _enum
from ._enums import (BuilderFlag, DataType, DeviceType, EngineCapability, ExecutionContextAllocationStrategy, LayerType,
                     MemoryPoolType, NetworkDefinitionCreationFlag, OnnxParserFlag, PluginFieldType, PreviewFeature,
                     ProfilingVerbosity, TacticSource, TensorFormat, TensorIOMode, TensorLocation, TensorRTPhase)
from ._profile import MAJOR as _MAJOR
from ._profile import V11 as _V11
from ._profile import VERSION as _VERSION

__version__ = _VERSION
_native.lib()  # as the wheel does: importing tensorrt loads libnvinfer.so.<major> (RTLD_LOCAL)

float32, float16, bfloat16 = DataType.FLOAT, DataType.HALF, DataType.BF16
int8, int32, int64, uint8 = DataType.INT8, DataType.INT32, DataType.INT64, DataType.UINT8
bool = DataType.BOOL  # noqa: A001 (the bindings' name)
fp8, int4, fp4, e8m0 = DataType.FP8, DataType.INT4, DataType.FP4, DataType.E8M0

_Severity = _enum(
    "Severity", {"INTERNAL_ERROR": 0, "ERROR": 1, "WARNING": 2, "INFO": 3, "VERBOSE": 4})


class ILogger:
    Severity = _Severity
    INTERNAL_ERROR, ERROR, WARNING, INFO, VERBOSE = (_Severity.INTERNAL_ERROR, _Severity.ERROR, _Severity.WARNING,
                                                     _Severity.INFO, _Severity.VERBOSE)

    def __init__(self) -> None:
        pass

    def log(self, severity, msg: str) -> None:
        raise NotImplementedError


class Logger(ILogger):
    def __init__(self, min_severity=_Severity.WARNING) -> None:
        super().__init__()
        self.min_severity = min_severity

    def log(self, severity, msg: str) -> None:
        if int(severity) <= int(self.min_severity):
            print(f"[TRT emulated] {msg}")


def _say(logger, severity, msg: str) -> None:
    if logger is not None:
        logger.log(severity, msg)


def _drain_native_log(logger, start: int) -> None:
    """Plugin and registry messages since ``start`` go to the API's logger, as TensorRT forwards them."""
    for msg in _native.log_messages()[start:]:
        _say(logger, ILogger.WARNING, msg)


class Dims:
    MAX_DIMS = 8
    __slots__ = ("_d",)

    def __init__(self, shape=()) -> None:
        self._d = [int(x) for x in shape]

    def __len__(self) -> int:
        return len(self._d)

    def __getitem__(self, i):
        return self._d[i]

    def __setitem__(self, i, v) -> None:
        self._d[i] = int(v)

    def __eq__(self, other) -> bool:
        try:
            return list(self._d) == [int(x) for x in other]
        except TypeError:
            return False

    def __repr__(self) -> str:
        return "(" + ", ".join(str(d) for d in self._d) + ("," if len(self._d) == 1 else "") + ")"

    __str__ = __repr__


class IHostMemory(bytes):
    """Only ``dtype``, ``nbytes`` and the buffer protocol, as in the bindings (no ``serialize``)."""

    __slots__ = ()
    _PUBLIC = frozenset({"dtype", "nbytes"})

    def __getattribute__(self, name):
        if not name.startswith("_") and name not in IHostMemory._PUBLIC:
            raise AttributeError(f"'tensorrt.tensorrt.IHostMemory' object has no attribute '{name}'")
        return bytes.__getattribute__(self, name)

    @property
    def dtype(self):
        return DataType.UINT8

    @property
    def nbytes(self) -> int:
        return len(self)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        pass


# ---- plugins ----

def _capsule(ptr: int):
    new = ctypes.pythonapi.PyCapsule_New
    new.restype, new.argtypes = ctypes.py_object, [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p]
    return new(ptr, None, None)


def _capsule_pointer(capsule) -> int:
    get = ctypes.pythonapi.PyCapsule_GetPointer
    get.restype, get.argtypes = ctypes.c_void_p, [ctypes.py_object, ctypes.c_char_p]
    return get(capsule, None)


class PluginField:
    __slots__ = ("_name", "_data", "_type")

    def __init__(self, name: str = "", data=None, type=PluginFieldType.UNKNOWN) -> None:  # noqa: A002
        self._name, self._type = str(name), type
        self._data = None if data is None else np.ascontiguousarray(np.asarray(memoryview(data)))

    @property
    def name(self) -> str:
        return self._name

    @property
    def data(self):
        return self._data

    @property
    def type(self):
        return self._type

    @property
    def size(self) -> int:
        return 0 if self._data is None else int(self._data.size)


class PluginFieldCollection(list):
    pass


class PluginFieldCollection_:  # noqa: N801 (the bindings' name)
    __slots__ = ("_fields",)

    def __init__(self, fields) -> None:
        self._fields = list(fields)

    def __len__(self) -> int:
        return len(self._fields)

    def __getitem__(self, i):
        return self._fields[i]


class IPluginV3:
    __slots__ = ("_handle", "__weakref__")

    def __new__(cls, *args, **kwargs):
        raise TypeError("tensorrt.IPluginV3 cannot be constructed here: plugins come from a creator")

    @classmethod
    def _wrap(cls, handle: int):
        obj = object.__new__(cls)
        obj._handle = handle
        return obj


class IPluginCreatorV3One:
    __slots__ = ("_handle", "_info")

    def __new__(cls, *args, **kwargs):
        raise TypeError("tensorrt.IPluginCreatorV3One cannot be constructed here: creators come from the registry")

    @classmethod
    def _wrap(cls, handle: int):
        obj = object.__new__(cls)
        obj._handle, obj._info = handle, _native.answer(_native.lib().emu_creator_info(handle))
        return obj

    @property
    def name(self) -> str:
        return self._info["name"]

    @property
    def plugin_version(self) -> str:
        return self._info["version"]

    @property
    def plugin_namespace(self) -> str:
        return self._info["namespace"]

    @property
    def field_names(self):
        return PluginFieldCollection_([PluginField(n, None, PluginFieldType(t)) for n, t, _ in self._info["fields"]])

    def create_plugin(self, name: str, field_collection, phase):
        fields = [(f.name, int(f.type), f.size, f.data) for f in field_collection]
        handle = _program.create_plugin(self._handle, name, fields, int(phase))
        return IPluginV3._wrap(handle) if handle else None


class IPluginRegistry:
    __slots__ = ("_libraries",)

    def __new__(cls, *args, **kwargs):
        raise TypeError("use tensorrt.get_plugin_registry()")

    def load_library(self, plugin_path: str):
        handle = _native.lib().emu_load_library(str(plugin_path).encode())
        return _capsule(handle) if handle else None

    def deregister_library(self, handle) -> None:
        _native.lib().emu_deregister_library(_capsule_pointer(handle))

    def get_creator(self, type: str, version: str, plugin_namespace: str = ""):  # noqa: A002
        handle = _native.lib().emu_get_creator(type.encode(), version.encode(), plugin_namespace.encode())
        return IPluginCreatorV3One._wrap(handle) if handle else None

    @property
    def all_creators(self) -> list:
        lib = _native.lib()
        return [IPluginCreatorV3One._wrap(lib.emu_creator_at(i)) for i in range(lib.emu_creator_count())]

    def deregister_creator(self, creator) -> bool:
        return bool(_native.lib().emu_deregister_creator(creator._handle))


_REGISTRY = object.__new__(IPluginRegistry)


def get_plugin_registry():
    return _REGISTRY


def init_libnvinfer_plugins(logger, namespace: str) -> bool:
    """TensorRT's own plugins: none are emulated; the registry stays as it is."""
    return True


# ---- network ----

class ITensor:
    __slots__ = ("_name", "_dtype", "_shape", "_input", "_output")

    def __new__(cls, *args, **kwargs):
        raise TypeError("tensors come from a network")

    @classmethod
    def _make(cls, name: str, dtype, shape, is_input: bool = False):
        t = object.__new__(cls)
        t._name, t._dtype, t._shape, t._input, t._output = name, dtype, Dims(shape), is_input, False
        return t

    @property
    def name(self) -> str:
        return self._name

    @name.setter
    def name(self, value: str) -> None:
        self._name = str(value)

    @property
    def dtype(self):
        return self._dtype

    @property
    def shape(self):
        return self._shape

    @property
    def is_shape_tensor(self) -> bool:
        return False

    @property
    def is_network_input(self) -> bool:
        return self._input

    @property
    def is_network_output(self) -> bool:
        return self._output

    @property
    def location(self):
        return TensorLocation.DEVICE


class ILayer:
    __slots__ = ("_name", "_type", "_inputs", "_outputs")

    def __new__(cls, *args, **kwargs):
        raise TypeError("layers come from a network")

    @classmethod
    def _make(cls, name, layer_type, inputs, outputs):
        layer = object.__new__(cls)
        layer._name, layer._type, layer._inputs, layer._outputs = name, layer_type, inputs, outputs
        return layer

    @property
    def name(self) -> str:
        return self._name

    @property
    def type(self):
        return self._type

    @property
    def num_inputs(self) -> int:
        return len(self._inputs)

    @property
    def num_outputs(self) -> int:
        return len(self._outputs)

    def get_input(self, index: int):
        return self._inputs[index]

    def get_output(self, index: int):
        return self._outputs[index]

    def get_output_type(self, index: int):
        return self._outputs[index].dtype

    if not _V11:  # weak typing: removed in TensorRT 11 (pyGraph.cpp)
        @property
        def precision(self):
            return DataType.FLOAT

        @property
        def precision_is_set(self) -> bool:
            return False


class IPluginV3Layer(ILayer):
    __slots__ = ("_plugin",)

    @property
    def plugin(self):
        return self._plugin


class INetworkDefinition:
    __slots__ = ("_flags", "_model", "_tensors", "_layers", "_inputs", "_outputs", "_plugins", "_api_plugins", "_name",
                 "_path", "__weakref__")

    def __new__(cls, *args, **kwargs):
        raise TypeError("use Builder.create_network()")

    @classmethod
    def _make(cls, flags: int):
        net = object.__new__(cls)
        net._flags, net._model, net._tensors, net._layers = flags, None, {}, []
        net._inputs, net._outputs, net._plugins, net._api_plugins, net._name, net._path = [], [], [], [], "", None
        return net

    @property
    def name(self) -> str:
        return self._name

    @property
    def num_inputs(self) -> int:
        return len(self._inputs)

    @property
    def num_outputs(self) -> int:
        return len(self._outputs)

    @property
    def num_layers(self) -> int:
        return len(self._layers)

    def get_input(self, index: int):
        return self._inputs[index]

    def get_output(self, index: int):
        return self._outputs[index]

    def get_layer(self, index: int):
        return self._layers[index]

    def __len__(self) -> int:
        return len(self._layers)

    def __getitem__(self, index: int):
        return self._layers[index]

    @property
    def flags(self) -> int:
        return self._flags

    def get_flag(self, flag) -> bool:
        if _V11 and flag == NetworkDefinitionCreationFlag.STRONGLY_TYPED:
            return True  # "Strongly typed mode is always enabled" (NvInfer.h 11)
        return _builtins.bool(self._flags & (1 << int(flag)))

    @property
    def has_implicit_batch_dimension(self) -> bool:
        return False

    def add_input(self, name: str, dtype, shape):
        t = ITensor._make(name, dtype, shape, is_input=True)
        self._tensors[name] = t
        self._inputs.append(t)
        return t

    def mark_output(self, tensor) -> None:
        tensor._output = True
        self._outputs.append(tensor)

    def unmark_output(self, tensor) -> None:
        tensor._output = False
        self._outputs.remove(tensor)

    def add_plugin_v3(self, inputs, shape_inputs, plugin):
        """A plugin layer: outputs typed and shaped by the plugin's getOutputDataTypes/getOutputShapes."""
        if shape_inputs:
            raise TypeError("shape inputs are not emulated")
        node = _program.PluginNode(index=len(self._api_plugins), name=f"plugin_{len(self._api_plugins)}", key=("", "", ""),
                                   inputs=[t.name for t in inputs], outputs=[], handle=plugin._handle)
        info = _native.answer(_native.lib().emu_plugin_info(plugin._handle))
        node.key = (info["name"], info["version"], info["namespace"])
        specs = [(t.dtype.name, [d if d >= 0 else f"{t.name}:{k}" for k, d in enumerate(t.shape)]) for t in inputs]
        symbols = {n: _program.Symbol(1, 1, 1) for _, dims in specs for n in dims if isinstance(n, str)}
        result = _program.plugin_build(node, specs, symbols)
        outs = []
        for i, ((rank, exprs), t) in enumerate(zip(result["outputs"], result["out_types"])):
            shape = [e if isinstance(e, int) else -1 for e in exprs]
            outs.append(ITensor._make(f"{node.name}_output_{i}", DataType(t), shape))
        node.outputs = [o.name for o in outs]
        layer = IPluginV3Layer._make(node.name, LayerType.PLUGIN_V3, list(inputs), outs)
        layer._plugin = plugin
        self._layers.append(layer)
        self._api_plugins.append((node, list(inputs), outs))
        return layer


class ParserError:
    __slots__ = ("_desc", "_node")

    def __new__(cls, *args, **kwargs):
        raise TypeError("parser errors come from the parser")

    @classmethod
    def _make(cls, desc: str, node: int = -1):
        e = object.__new__(cls)
        e._desc, e._node = desc, node
        return e

    def desc(self) -> str:
        return self._desc

    def node(self) -> int:
        return self._node

    def __str__(self) -> str:
        return f"In node {self._node}: {self._desc}"

    __repr__ = __str__


class OnnxParser:
    """onnx-tensorrt's behaviour for plugin nodes: an op of an unknown domain is imported as the plugin
    whose creator (op_type, plugin_version, plugin_namespace) is registered, with the node's
    attributes that the creator lists in getFieldNames; a missing creator is a parse error."""

    __slots__ = ("_network", "_logger", "_errors", "_flags")

    def __init__(self, network, logger) -> None:
        self._network, self._logger, self._errors, self._flags = network, logger, [], 1  # NATIVE_INSTANCENORM on

    @property
    def flags(self) -> int:
        return self._flags

    @flags.setter
    def flags(self, value: int) -> None:
        self._flags = int(value)

    def set_flag(self, flag) -> None:
        self._flags |= 1 << int(flag)

    def clear_flag(self, flag) -> None:
        self._flags &= ~(1 << int(flag))

    def get_flag(self, flag) -> bool:
        return _builtins.bool(self._flags & (1 << int(flag)))

    @property
    def num_errors(self) -> int:
        return len(self._errors)

    def get_error(self, index: int):
        return self._errors[index]

    def clear_errors(self) -> None:
        self._errors.clear()

    def parse_from_file(self, model: str) -> bool:
        try:
            proto = onnx.load(str(model))
        except Exception as exc:
            self._errors.append(ParserError._make(f"cannot read {model}: {exc}"))
            return False
        return self._parse(proto, str(model))

    def parse(self, model, path: str | None = None) -> bool:
        proto = onnx.ModelProto()
        try:
            proto.ParseFromString(bytes(model))
        except Exception as exc:
            self._errors.append(ParserError._make(f"cannot parse the model: {exc}"))
            return False
        if path:
            from onnx.external_data_helper import load_external_data_for_model

            load_external_data_for_model(proto, str(Path(path).parent))
        return self._parse(proto, path)

    def _parse(self, proto: onnx.ModelProto, path) -> bool:
        net = self._network
        start = _native.lib().emu_log_count()
        std_domains = {"", "ai.onnx"}
        local = {(f.domain, f.name) for f in proto.functions}
        shapes = _program.shapes_of(proto)
        net._model, net._path = proto, path
        for v in proto.graph.input:
            dtype, dims = shapes[v.name]
            net.add_input(v.name, DataType.__members__[dtype], [d if isinstance(d, int) and d > 0 else -1 for d in dims])
        ok = True
        for i, node in enumerate(proto.graph.node):
            outs = []
            for o in node.output:
                dtype, dims = shapes.get(o, ("FLOAT", []))
                t = ITensor._make(o, DataType.__members__.get(dtype, DataType.FLOAT),
                                  [d if isinstance(d, int) else -1 for d in dims if d is not None])
                net._tensors[o] = t
                outs.append(t)
            ins = [net._tensors.get(x) for x in node.input if x]
            if node.domain in std_domains or (node.domain, node.op_type) in local:
                net._layers.append(ILayer._make(node.name, LayerType.IDENTITY, ins, outs))  # standard ops: not modelled
                continue
            version = next((a.s.decode() for a in node.attribute if a.name == "plugin_version"), "1")
            namespace = next((a.s.decode() for a in node.attribute if a.name == "plugin_namespace"), "")
            creator = _native.lib().emu_get_creator(node.op_type.encode(), version.encode(), namespace.encode())
            if not creator:
                self._errors.append(ParserError._make(
                    f"No importer registered for op: {node.op_type}. Attempted to import as plugin: plugin creator "
                    f"{node.op_type} (version {version}, namespace '{namespace}') not found", i))
                ok = False
                continue
            info = _native.answer(_native.lib().emu_creator_info(creator))
            fields = _program.onnx_attribute_fields(node, {n: t for n, t, _ in info["fields"]})
            handle = _program.create_plugin(creator, node.name, fields, TensorRTPhase.BUILD.value)
            if not handle:
                _drain_native_log(self._logger, start)
                self._errors.append(ParserError._make(f"creator {node.op_type} could not create the plugin for {node.name}", i))
                ok = False
                continue
            pnode = _program.PluginNode(index=i, name=node.name, key=(node.op_type, version, namespace),
                                        inputs=list(node.input), outputs=list(node.output), handle=handle)
            net._plugins.append(pnode)
            layer = IPluginV3Layer._make(node.name, LayerType.PLUGIN_V3, ins, outs)
            layer._plugin = IPluginV3._wrap(handle)
            net._layers.append(layer)
        for o in proto.graph.output:
            net.mark_output(net._tensors[o.name])
        _drain_native_log(self._logger, start)
        return ok


# ---- builder ----

class IOptimizationProfile:
    __slots__ = ("_shapes", "extra_memory_target")

    def __new__(cls, *args, **kwargs):
        raise TypeError("use Builder.create_optimization_profile()")

    @classmethod
    def _make(cls):
        p = object.__new__(cls)
        p._shapes, p.extra_memory_target = {}, 1.0
        return p

    def set_shape(self, input: str, min, opt, max) -> None:  # noqa: A002
        self._shapes[input] = (Dims(min), Dims(opt), Dims(max))

    def get_shape(self, input: str) -> list:  # noqa: A002
        return list(self._shapes.get(input, (Dims(), Dims(), Dims())))

    def __bool__(self) -> bool:
        for lo, opt, hi in self._shapes.values():
            if len(lo) != len(opt) or len(opt) != len(hi) or any(not a <= b <= c for a, b, c in zip(lo, opt, hi)):
                return False
        return True

    __nonzero__ = __bool__


class ITimingCache:
    __slots__ = ("_entries",)

    def __new__(cls, *args, **kwargs):
        raise TypeError("use IBuilderConfig.create_timing_cache()")

    @classmethod
    def _make(cls, data: bytes):
        c = object.__new__(cls)
        c._entries = set(filter(None, bytes(data).decode(errors="replace").split("\n"))) if data else set()
        return c

    def combine(self, input_cache, ignore_mismatch: bool) -> bool:
        self._entries |= input_cache._entries
        return True

    def serialize(self):
        return IHostMemory("\n".join(sorted(self._entries)).encode())

    def reset(self) -> bool:
        self._entries.clear()
        return True


class IBuilderConfig:
    __slots__ = ("_flags", "_profiles", "_pools", "_cache", "profiling_verbosity", "DLA_core", "default_device_type",
                 "engine_capability", "builder_optimization_level", "plugins_to_serialize", "max_aux_streams",
                 "avg_timing_iterations", "hardware_compatibility_level", "profile_stream", "_preview")
    if not _V11:
        __slots__ = __slots__ + ("int8_calibrator",)

    def __new__(cls, *args, **kwargs):
        raise TypeError("use Builder.create_builder_config()")

    @classmethod
    def _make(cls):
        c = object.__new__(cls)
        c._flags, c._profiles, c._pools, c._cache, c._preview = {BuilderFlag.TF32}, [], {}, None, set()
        c.profiling_verbosity, c.DLA_core, c.default_device_type = ProfilingVerbosity.LAYER_NAMES_ONLY, -1, DeviceType.GPU
        c.engine_capability, c.builder_optimization_level, c.plugins_to_serialize = EngineCapability.STANDARD, 3, []
        c.max_aux_streams, c.avg_timing_iterations, c.hardware_compatibility_level, c.profile_stream = -1, 1, None, 0
        if not _V11:
            c.int8_calibrator = None
        return c

    def set_flag(self, flag) -> None:
        self._flags.add(flag)

    def clear_flag(self, flag) -> None:
        self._flags.discard(flag)

    def get_flag(self, flag) -> bool:
        return flag in self._flags

    @property
    def flags(self) -> int:
        return sum(1 << int(f) for f in self._flags)

    def add_optimization_profile(self, profile) -> int:
        if not profile:
            return -1
        self._profiles.append(profile)
        return len(self._profiles) - 1

    @property
    def num_optimization_profiles(self) -> int:
        return len(self._profiles)

    def set_memory_pool_limit(self, pool, pool_size: int) -> None:
        self._pools[pool] = int(pool_size)

    def get_memory_pool_limit(self, pool) -> int:
        return self._pools.get(pool, 64 << 30 if pool == MemoryPoolType.WORKSPACE else 0)

    def create_timing_cache(self, serialized_timing_cache):
        return ITimingCache._make(bytes(serialized_timing_cache))

    def set_timing_cache(self, cache, ignore_mismatch: bool) -> bool:
        self._cache = cache
        return True

    def get_timing_cache(self):
        return self._cache

    def get_tactic_sources(self) -> int:
        return sum(1 << int(t) for t in TacticSource.__members__.values())

    def set_preview_feature(self, feature, enable: bool) -> None:
        (self._preview.add if enable else self._preview.discard)(feature)

    def get_preview_feature(self, feature) -> bool:
        return feature in self._preview


class Builder:
    __slots__ = ("_logger", "max_threads")

    def __init__(self, logger) -> None:
        self._logger, self.max_threads = logger, 1

    @property
    def logger(self):
        return self._logger

    @property
    def num_DLA_cores(self) -> int:
        return 0

    if not _V11:  # removed in TensorRT 11
        @property
        def platform_has_fast_fp16(self) -> bool:
            return True

        @property
        def platform_has_tf32(self) -> bool:
            return True

    def create_network(self, flags: int = 0):
        if not _V11 and flags & ~((1 << 4) - 1):
            raise ValueError(f"bad network creation flags {flags}")
        return INetworkDefinition._make(int(flags))

    def create_builder_config(self):
        return IBuilderConfig._make()

    def create_optimization_profile(self):
        return IOptimizationProfile._make()

    def get_plugin_registry(self):
        return _REGISTRY

    def build_serialized_network(self, network, config):
        start = _native.lib().emu_log_count()
        try:
            return IHostMemory(_build(network, config, self._logger))
        except _program.BuildError as exc:
            _drain_native_log(self._logger, start)
            _say(self._logger, ILogger.ERROR, f"[emulated builder] {exc}")
            return None


def _network_model(network) -> onnx.ModelProto:
    """The network as a graph: the parsed ONNX model, or (API networks) placeholder nodes for plugin layers."""
    if network._model is not None:
        return network._model
    h = onnx.helper
    nodes, value_info = [], []
    for node, ins, outs in network._api_plugins:
        node.inputs, node.outputs = [t.name for t in ins], [t.name for t in outs]  # tensors may have been renamed
        nodes.append(h.make_node(node.key[0] or "Plugin", [t.name for t in ins], [t.name for t in outs], name=node.name,
                                 domain="emulated.plugin"))
        for t in outs:
            value_info.append(h.make_tensor_value_info(
                t.name, _program.TRT_TO_ONNX[t.dtype.name], [d if d >= 0 else None for d in t.shape]))
    inputs = [h.make_tensor_value_info(t.name, _program.TRT_TO_ONNX[t.dtype.name],
                                       [d if d >= 0 else f"{t.name}_{k}" for k, d in enumerate(t.shape)])
              for t in network._inputs]
    outputs = [next(v for v in value_info if v.name == t.name) for t in network._outputs]
    graph = h.make_graph(nodes, "network", inputs, outputs, value_info=value_info)
    return h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])


def _build(network, config, logger) -> bytes:
    model = _network_model(network)
    strongly_typed = _V11 or network.get_flag(NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    flags = {f.name for f in config._flags}
    vc = "VERSION_COMPATIBLE" in flags
    if "EXCLUDE_LEAN_RUNTIME" in flags and not vc:
        raise _program.BuildError("EXCLUDE_LEAN_RUNTIME needs VERSION_COMPATIBLE")
    if strongly_typed and flags & {"FP16", "BF16", "INT8", "FP8"}:
        raise _program.BuildError("precision flags are not allowed on a strongly typed network")
    shapes = _program.shapes_of(model)
    plugins = list(network._plugins) if network._model is not None else [n for n, _, _ in network._api_plugins]
    for n in plugins:
        n.graph_in_types = [shapes[i][0] for i in n.inputs]
        n.graph_out_types = [shapes.get(o, ("FLOAT", []))[0] for o in n.outputs]

    # the profile: every dynamic input dim needs a range
    symbols: dict[str, _program.Symbol] = {}
    profile = config._profiles[0] if config._profiles else None
    profile_json = {}
    for t in network._inputs:
        dims = shapes[t.name][1]
        if all(isinstance(d, int) and d > 0 for d in dims):
            continue
        if profile is None or t.name not in profile._shapes:
            raise _program.BuildError(f"network has dynamic inputs but no optimization profile covers '{t.name}'")
        lo, opt, hi = profile._shapes[t.name]
        if len(lo) != len(dims):
            raise _program.BuildError(f"profile for '{t.name}' has rank {len(lo)}, the input has rank {len(dims)}")
        for k, d in enumerate(dims):
            if isinstance(d, int) and d > 0 and not lo[k] == opt[k] == hi[k] == d:
                raise _program.BuildError(f"profile for '{t.name}' dim {k} must be {d} (a static dim)")
            if isinstance(d, str):
                symbols[d] = _program.Symbol(lo[k], opt[k], hi[k])
        profile_json[t.name] = [list(lo), list(opt), list(hi)]

    # the precision the builder picks for each plugin's float I/O (weak typing: FP16/BF16 flags)
    weak_float = "HALF" if "FP16" in flags else "BF16" if "BF16" in flags else None
    for node in plugins:
        in_specs = []
        for name, t in zip(node.inputs, node.graph_in_types):
            dims = shapes[name][1]
            if any(d is None for d in dims):
                raise _program.BuildError(f"the emulated builder cannot tell the shape of '{name}' (no value_info)")
            in_specs.append((t, dims))
        result = None
        if weak_float and not strongly_typed:
            try:  # the builder prefers the lower precision where the plugin supports it
                result = _program.plugin_build(node, [(weak_float if t == "FLOAT" else t, d) for t, d in in_specs], symbols)
                in_specs = [(weak_float if t == "FLOAT" else t, d) for t, d in in_specs]
            except _program.BuildError:
                result = None
        if result is None:
            result = _program.plugin_build(node, in_specs, symbols)
        node.build = result
        node.in_types = [t for t, _ in in_specs]
        node.out_types = [DataType(v).name for v in result["out_types"]]
        node.fields = _program.plugin_fields(node.handle)
        if result["workspace"] > config.get_memory_pool_limit(MemoryPoolType.WORKSPACE):
            raise _program.BuildError(f"plugin layer {node.name} needs {result['workspace']} workspace bytes, over the "
                                      f"WORKSPACE pool limit")
        _program.output_symbols(node, result, [shapes.get(o, (None, None))[1] for o in node.outputs], symbols)
        # the parser types a plugin's outputs by getOutputDataTypes; only float precision may differ from the
        # graph's, and only on a weakly typed network (the builder inserts a reformat)
        floats = {"FLOAT", "HALF", "BF16"}
        bad = [(o, g, p) for o, g, p in zip(node.outputs, node.graph_out_types, node.out_types)
               if g != p and (strongly_typed or not {g, p} <= floats)]
        if bad:
            raise _program.BuildError(f"plugin layer {node.name}: the plugin's output types disagree with the graph's "
                                      f"(name, graph, plugin): {bad}")

    io = []
    for t in network._inputs:
        io.append({"name": t.name, "mode": "INPUT", "dtype": shapes[t.name][0], "dims": shapes[t.name][1]})
    for t in network._outputs:
        dtype, dims = shapes.get(t.name, (t.dtype.name, list(t.shape)))
        io.append({"name": t.name, "mode": "OUTPUT", "dtype": dtype, "dims": dims})
    embedded = []
    if config.plugins_to_serialize:
        if not vc:
            _say(logger, ILogger.WARNING, "plugins_to_serialize is ignored: the engine is not version compatible")
        else:
            for lib in config.plugins_to_serialize:
                embedded.append({"name": Path(lib).name, "data": _program.b64(Path(lib).read_bytes())})
    if config._cache is not None and "DISABLE_TIMING_CACHE" not in flags:
        config._cache._entries |= {f"{n.key[0]}:{n.in_types}" for n in plugins}
    header = {"tensorrt_version": _VERSION, "major": _MAJOR, "strongly_typed": strongly_typed, "flags": sorted(flags),
              "version_compatible": vc, "exclude_lean_runtime": "EXCLUDE_LEAN_RUNTIME" in flags,
              "profile": profile_json, "io": io, "plugins": [n.to_json() for n in plugins],
              "embedded_libraries": embedded}
    return _program.pack(header, model)


# ---- runtime ----

class Runtime:
    __slots__ = ("_logger", "engine_host_code_allowed", "DLA_core", "max_threads", "_loaded")

    def __init__(self, logger) -> None:
        self._logger, self.engine_host_code_allowed, self.DLA_core, self.max_threads = logger, False, -1, 1
        self._loaded = []

    @property
    def logger(self):
        return self._logger

    def get_plugin_registry(self):
        return _REGISTRY

    def deserialize_cuda_engine(self, serialized_engine):
        start = _native.lib().emu_log_count()
        try:
            header, model = _program.unpack(bytes(memoryview(serialized_engine)))
            return ICudaEngine._make(self, header, model)
        except (ValueError, RuntimeError) as exc:
            _drain_native_log(self._logger, start)
            _say(self._logger, ILogger.ERROR, f"[emulated runtime] cannot deserialize the engine: {exc}")
            return None


def _version_tuple(v: str) -> tuple:
    return tuple(int(x) for x in v.split("."))


class ICudaEngine:
    __slots__ = ("_header", "_model", "_plugins", "_io", "_segments", "_name", "_runtime_handles", "__weakref__")

    def __new__(cls, *args, **kwargs):
        raise TypeError("engines come from Runtime.deserialize_cuda_engine")

    @classmethod
    def _make(cls, runtime: Runtime, header: dict, model: onnx.ModelProto):
        built, here = header["tensorrt_version"], _VERSION
        if not header["version_compatible"]:
            if built != here:
                raise ValueError(f"the plan was built by TensorRT {built}; this is {here} (build it with "
                                 "version compatibility to run it on another version)")
        else:
            if header["major"] != _MAJOR or _version_tuple(here) < _version_tuple(built):
                raise ValueError(f"a version-compatible plan of TensorRT {built} runs on {header['major']}.x >= {built}; "
                                 f"this is {here}")
            if header["exclude_lean_runtime"] and built != here:
                raise ValueError(f"the plan excludes the lean runtime: it needs TensorRT {built}'s lean runtime "
                                 f"(Runtime.load_runtime); this is {here}")
            if not runtime.engine_host_code_allowed:
                raise ValueError("version-compatible plans run host code: set Runtime.engine_host_code_allowed = True")
        for lib in header["embedded_libraries"]:  # TensorRT loads serialized plugin libraries through its registry
            folder = Path(tempfile.mkdtemp(prefix="trt_emulated_plugins_"))
            path = folder / lib["name"]
            path.write_bytes(_program.unb64(lib["data"]))
            handle = _native.lib().emu_load_library(str(path).encode())
            if not handle:
                raise RuntimeError(f"the plugin library serialized in the plan ({lib['name']}) could not be loaded: "
                                   + (_native.log_messages()[-1] if _native.log_messages() else ""))
            runtime._loaded.append(handle)
        e = object.__new__(cls)
        e._header, e._model, e._io, e._name = header, model, header["io"], ""
        e._plugins = []
        for p in header["plugins"]:
            node = _program.PluginNode(**{k: (tuple(v) if k == "key" else v) for k, v in p.items()})
            creator = _native.lib().emu_get_creator(*(s.encode() for s in node.key))
            if not creator:
                raise RuntimeError(f"Cannot find plugin creator {node.key[0]} (version {node.key[1]}, namespace "
                                   f"'{node.key[2]}') to deserialize layer {node.name}: load the plugin library first")
            keep, fields = _program.field_arrays(node.fields)
            handle = _program.create_plugin(creator, node.name, fields, TensorRTPhase.RUNTIME.value)
            if not handle:
                raise RuntimeError(f"the creator could not recreate plugin layer {node.name} from its serialized fields")
            node.handle = handle
            e._plugins.append(node)
        e._segments = _program.segments(model, {n.index for n in e._plugins}) if model.graph.node and \
            not any(n.domain == "emulated.plugin" for n in model.graph.node) else None
        return e

    def _tensor(self, name: str) -> dict:
        for t in self._io:
            if t["name"] == name:
                return t
        raise KeyError(name)

    @property
    def name(self) -> str:
        return self._name

    @property
    def num_io_tensors(self) -> int:
        return len(self._io)

    def get_tensor_name(self, index: int) -> str:
        return self._io[index]["name"]

    def get_tensor_mode(self, name: str):
        return TensorIOMode.__members__[self._tensor(name)["mode"]]

    def get_tensor_dtype(self, name: str):
        return DataType.__members__[self._tensor(name)["dtype"]]

    def get_tensor_shape(self, name: str):
        return Dims([d if isinstance(d, int) and d > 0 else -1 for d in self._tensor(name)["dims"]])

    def get_tensor_format(self, name: str, profile_index: int = 0):
        return TensorFormat.LINEAR

    def get_tensor_location(self, name: str):
        return TensorLocation.DEVICE

    def is_shape_inference_io(self, name: str) -> bool:
        return False

    def get_tensor_profile_shape(self, name: str, profile_index: int) -> list:
        lo, opt, hi = self._header["profile"].get(name, [self._tensor(name)["dims"]] * 3)
        return [Dims(lo), Dims(opt), Dims(hi)]

    @property
    def num_optimization_profiles(self) -> int:
        return 1

    @property
    def num_layers(self) -> int:
        return len(self._model.graph.node)

    if _V11:  # NvInferRuntime.h 11: the aliased-I/O query exists; 10.13's bindings do not have it
        def get_aliased_input_tensor(self, name: str):
            return None

    def get_device_memory_size_for_profile_v2(self, profile_index: int) -> int:
        return sum(int(p["build"]["workspace"]) for p in self._plugins)

    @property
    def device_memory_size_v2(self) -> int:
        return self.get_device_memory_size_for_profile_v2(0)

    if not _V11:
        def get_device_memory_size_for_profile(self, profile_index: int) -> int:
            return self.get_device_memory_size_for_profile_v2(profile_index)

        @property
        def device_memory_size(self) -> int:
            return self.device_memory_size_v2

    def create_execution_context(self, strategy=ExecutionContextAllocationStrategy.STATIC):
        return IExecutionContext._make(self, strategy)

    def serialize(self):
        return IHostMemory(_program.pack(self._header, self._model))

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        pass


class IOutputAllocator:
    def __init__(self) -> None:
        pass


class IDebugListener:
    def __init__(self) -> None:
        pass


class IExecutionContext:
    __slots__ = ("_engine", "_shapes", "_addresses", "_allocators", "_plugins", "_strategy", "_device_memory",
                 "active_optimization_profile", "debug_sync", "name", "__weakref__")

    def __new__(cls, *args, **kwargs):
        raise TypeError("use ICudaEngine.create_execution_context()")

    @classmethod
    def _make(cls, engine: ICudaEngine, strategy):
        c = object.__new__(cls)
        c._engine, c._shapes, c._addresses, c._allocators, c._strategy = engine, {}, {}, {}, strategy
        c._device_memory, c.active_optimization_profile, c.debug_sync, c.name = 0, 0, False, ""
        c._plugins = []
        for node in engine._plugins:
            handle = _native.lib().emu_attach(node.handle)  # IPluginV3OneRuntime::attachToContext
            if not handle:
                raise RuntimeError(f"attachToContext failed for plugin layer {node.name}")
            c._plugins.append(handle)
        return c

    @property
    def engine(self):
        return self._engine

    def set_input_shape(self, name: str, shape) -> bool:
        t = self._engine._tensor(name)
        shape = [int(d) for d in shape]
        if t["mode"] != "INPUT" or len(shape) != len(t["dims"]):
            return False
        lo, _, hi = self._engine._header["profile"].get(name, [t["dims"]] * 3)
        if any(not a <= d <= b for a, d, b in zip(lo, shape, hi)):
            return False
        self._shapes[name] = shape
        return True

    def _symbols(self) -> dict[str, int]:
        out = {}
        for t in self._engine._io:
            if t["mode"] == "INPUT" and t["name"] in self._shapes:
                for d, v in zip(t["dims"], self._shapes[t["name"]]):
                    if isinstance(d, str):
                        out[d] = v
        return out

    def get_tensor_shape(self, name: str):
        t = self._engine._tensor(name)
        if t["mode"] == "INPUT":
            return Dims(self._shapes.get(name, [d if isinstance(d, int) and d > 0 else -1 for d in t["dims"]]))
        symbols = self._symbols()
        return Dims([d if isinstance(d, int) else symbols.get(d, -1) for d in t["dims"]])

    def get_tensor_address(self, name: str) -> int:
        return self._addresses.get(name, 0)

    def set_tensor_address(self, name: str, memory: int) -> bool:
        self._engine._tensor(name)
        self._addresses[name] = int(memory)
        return True

    def set_output_allocator(self, name: str, output_allocator) -> bool:
        if self._engine._tensor(name)["mode"] != "OUTPUT":
            return False
        self._allocators[name] = output_allocator
        return True

    def get_output_allocator(self, name: str):
        return self._allocators.get(name)

    def set_optimization_profile_async(self, profile_index: int, stream_handle: int) -> bool:
        return profile_index == 0

    def update_device_memory_size_for_shapes(self) -> int:
        return self._engine.get_device_memory_size_for_profile_v2(0)

    def set_device_memory(self, memory: int, size: int) -> None:
        self._device_memory = int(memory)

    def set_all_tensors_debug_state(self, flag: bool) -> bool:
        return True

    def set_debug_listener(self, listener) -> bool:
        return True

    @property
    def all_binding_shapes_specified(self) -> bool:
        return all(t["name"] in self._shapes for t in self._engine._io if t["mode"] == "INPUT")

    def execute_async_v3(self, stream_handle: int) -> bool:
        try:
            self._execute()
            return True
        except Exception as exc:  # TensorRT reports enqueue failures through the logger and returns False
            print(f"[TRT emulated] execute_async_v3 failed: {exc}")
            return False

    def _execute(self) -> None:
        engine = self._engine
        env: dict[str, np.ndarray] = {}
        for t in engine._io:
            if t["mode"] != "INPUT":
                continue
            shape = self._shapes.get(t["name"]) or [d for d in t["dims"]]
            if any(not isinstance(d, int) or d < 0 for d in shape):
                raise RuntimeError(f"input {t['name']}: shape not set")
            addr = self._addresses.get(t["name"])
            if not addr:
                raise RuntimeError(f"input {t['name']}: no address set")
            dtype = _program.numpy_dtype(t["dtype"])
            n = int(np.prod(shape))
            buf = (ctypes.c_char * (n * dtype.itemsize)).from_address(addr)
            env[t["name"]] = np.frombuffer(bytes(buf), dtype).reshape(shape)
        symbols = self._symbols()
        if engine._segments is None:  # an API network: plugin layers only
            for node, handle in zip(engine._plugins, self._plugins):
                _program.enqueue(handle, node, env, symbols)
        else:
            for k, seg in enumerate(engine._segments):
                seg.run(env)
                if k < len(engine._plugins):
                    node, handle = engine._plugins[k], self._plugins[k]
                    self._bind_input_symbols(node, env, symbols)
                    _program.enqueue(handle, node, env, symbols)
                    self._bind_output_symbols(node, env, symbols)
        for t in engine._io:
            if t["mode"] != "OUTPUT":
                continue
            value = np.ascontiguousarray(env[t["name"]].astype(_program.numpy_dtype(t["dtype"]), copy=False))
            allocator = self._allocators.get(t["name"])
            if allocator is not None:
                if hasattr(type(allocator), "reallocate_output_async"):
                    ptr = allocator.reallocate_output_async(t["name"], self._addresses.get(t["name"], 0),
                                                            max(value.nbytes, 1), 256, 0)
                else:
                    ptr = allocator.reallocate_output(t["name"], self._addresses.get(t["name"], 0), max(value.nbytes, 1), 256)
                if not ptr:
                    raise RuntimeError(f"the output allocator gave no memory for {t['name']}")
                ctypes.memmove(int(ptr), value.ctypes.data, value.nbytes)
                allocator.notify_shape(t["name"], Dims(value.shape))
            else:
                addr = self._addresses.get(t["name"])
                if not addr:
                    raise RuntimeError(f"output {t['name']}: neither an address nor an output allocator is set")
                expected = self.get_tensor_shape(t["name"])
                if list(expected) != list(value.shape):
                    raise RuntimeError(f"output {t['name']} has a data-dependent shape {value.shape}: it needs an "
                                       "output allocator")
                ctypes.memmove(addr, value.ctypes.data, value.nbytes)

    def _bind_input_symbols(self, node, env, symbols) -> None:
        shapes = _program.shapes_of(self._engine._model)
        for name in node.inputs:
            for d, v in zip(shapes[name][1], env[name].shape):
                if isinstance(d, str):
                    symbols.setdefault(d, int(v))

    def _bind_output_symbols(self, node, env, symbols) -> None:
        shapes = _program.shapes_of(self._engine._model)
        for name in node.outputs:
            for d, v in zip(shapes.get(name, (None, []))[1], env[name].shape):
                if isinstance(d, str):
                    symbols[d] = int(v)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        pass


del annotations
