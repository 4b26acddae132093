"""The runtime: deserializing a plan, the engine, the execution context."""

from __future__ import annotations

import ctypes
import tempfile
from pathlib import Path

import numpy as np
import onnx

from . import _native, _program
from ._core import Dims, IHostMemory, ILogger, _drain_native_log, _say
from ._enums import DataType, ExecutionContextAllocationStrategy, TensorFormat, TensorIOMode, TensorLocation, TensorRTPhase
from ._plugins import _REGISTRY
from ._profile import MAJOR as _MAJOR
from ._profile import V11 as _V11
from ._profile import VERSION as _VERSION


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
    __slots__ = ("_header", "_model", "_plugins", "_io", "_segments", "_name", "_shapes", "__weakref__")

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
            fields = _program.field_arrays(node.fields)
            handle = _program.create_plugin(creator, node.name, fields, TensorRTPhase.RUNTIME.value)
            if not handle:
                raise RuntimeError(f"the creator could not recreate plugin layer {node.name} from its serialized fields")
            node.handle = handle
            e._plugins.append(node)
        e._shapes = _program.shapes_of(model)  # the graph's types and dims, read once
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
        shapes = self._engine._shapes
        for name in node.inputs:
            for d, v in zip(shapes[name][1], env[name].shape):
                if isinstance(d, str):
                    symbols.setdefault(d, int(v))

    def _bind_output_symbols(self, node, env, symbols) -> None:
        shapes = self._engine._shapes
        for name in node.outputs:
            for d, v in zip(shapes.get(name, (None, []))[1], env[name].shape):
                if isinstance(d, str):
                    symbols[d] = int(v)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        pass


