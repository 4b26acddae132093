"""The builder: profiles, timing caches, the config, and the build of a plan."""

from __future__ import annotations

from pathlib import Path

import onnx

from . import _native, _program
from ._core import Dims, IHostMemory, ILogger, _drain_native_log, _say
from ._enums import BuilderFlag, DataType, DeviceType, EngineCapability, MemoryPoolType, NetworkDefinitionCreationFlag, ProfilingVerbosity, TacticSource
from ._network import INetworkDefinition
from ._plugins import _REGISTRY
from ._profile import MAJOR as _MAJOR
from ._profile import V11 as _V11
from ._profile import VERSION as _VERSION


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
