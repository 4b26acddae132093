"""TensorRT stages: ``engine_from_onnx`` (build a serialized engine from the TensorRT-lowered
ONNX with the SaintTokenDrop plugin), ``TrtRunner`` (run it from PyTorch CUDA tensors), and
``run_single_plugin`` (a one-plugin network, for testing the plugin against the reference).

Everything here needs TensorRT's Python package and a CUDA GPU; :func:`require_tensorrt`
turns their absence into one clear line (exit code 5).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..errors import InputError, MissingDependencyError, StageError
from ..io import write_json, write_with
from ..models.record import ModelRecord

PLUGIN_LIB = "libsaint_plugins.so"
ENV_PLUGIN_LIB = "SAINT_PLUGIN_LIB"
PRECISIONS = ("fp32", "fp16", "bf16")


def require_tensorrt():
    """Return the ``tensorrt`` module, or raise MissingDependencyError saying what is missing."""
    try:
        import tensorrt
    except ImportError:
        raise MissingDependencyError(
            "TensorRT is not installed: the ONNX files are written; to build an engine install TensorRT "
            "(pip install 'saint-export[tensorrt]' on a machine with an NVIDIA GPU) and build plugins/ with CMake"
        ) from None
    if not torch.cuda.is_available():
        raise MissingDependencyError("no CUDA GPU is visible: TensorRT engines are built on the GPU they will run on")
    return tensorrt


def plugin_library_path(explicit: str | Path | None = None) -> Path | None:
    """``explicit``, ``$SAINT_PLUGIN_LIB``, or ``plugins/build/libsaint_plugins.so``; None if none exists."""
    root = Path(__file__).resolve().parents[2]
    for candidate in (explicit, os.environ.get(ENV_PLUGIN_LIB), root / "plugins" / "build" / PLUGIN_LIB):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


_LOADED: dict[str, Any] = {}


def load_plugin_library(path: Path):
    """Register the library's creators with TensorRT's plugin registry (getCreators entry point)."""
    trt = require_tensorrt()
    key = str(Path(path).resolve())
    if key not in _LOADED:
        handle = trt.get_plugin_registry().load_library(key)
        if handle is None:
            raise StageError("plugin", f"TensorRT could not load {path} (built for another TensorRT or CUDA?)")
        _LOADED[key] = handle
    return _LOADED[key]


@dataclass
class EngineOptions:
    batch: tuple[int, int, int] = (1, 8, 32)  # min, opt, max
    precision: str = "fp32"  # fp32 | fp16 | bf16 (SaintTokenDrop's similarity stays fp32 inside the plugin)
    optimization_level: int = 3
    workspace_mib: int = 4096
    timing_cache: Path | None = None
    version_compatible: bool = False
    serialize_plugin: bool = True  # embed libsaint_plugins.so in version-compatible engines (TensorRT's rule)
    plugin_library: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> "EngineOptions":
        lo, opt, hi = self.batch
        if not 1 <= lo <= opt <= hi:
            raise InputError(f"--batch min,opt,max must satisfy 1 <= min <= opt <= max; got {self.batch}")
        if self.precision not in PRECISIONS:
            raise InputError(f"precision must be one of {PRECISIONS}; got {self.precision!r}")
        if not 0 <= self.optimization_level <= 5:
            raise InputError(f"builder optimization level must be in 0..5; got {self.optimization_level}")
        return self


def _logger(trt):
    return trt.Logger(trt.Logger.WARNING)


def engine_from_onnx(onnx_path: Path, plan_path: Path, options: EngineOptions, force: bool = False) -> Path:
    """Parse the TensorRT-lowered ONNX with the plugin loaded, build, write ``plan_path`` and its
    ``.json`` sidecar atomically. Returns ``plan_path``."""
    trt = require_tensorrt()
    options.validate()
    lib = plugin_library_path(options.plugin_library)
    if lib is None:
        raise MissingDependencyError(f"{PLUGIN_LIB} not found: build plugins/ with CMake or set ${ENV_PLUGIN_LIB}")
    load_plugin_library(lib)
    logger = _logger(trt)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise StageError("engine", f"TensorRT's ONNX parser rejected {onnx_path}: {errors[:500]}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, options.workspace_mib << 20)
    config.builder_optimization_level = options.optimization_level
    if options.precision == "fp16":
        config.set_flag(trt.BuilderFlag.FP16)
    elif options.precision == "bf16":
        config.set_flag(trt.BuilderFlag.BF16)
    if options.version_compatible:
        config.set_flag(trt.BuilderFlag.VERSION_COMPATIBLE)
    if plugin_embedded(options) and hasattr(config, "plugins_to_serialize"):
        config.plugins_to_serialize = [str(lib)]
    cache_bytes = options.timing_cache.read_bytes() if options.timing_cache and options.timing_cache.is_file() else b""
    cache = config.create_timing_cache(cache_bytes)
    config.set_timing_cache(cache, ignore_mismatch=False)
    inp = network.get_input(0)
    _, c, h, w = inp.shape
    profile = builder.create_optimization_profile()
    lo, opt, hi = options.batch
    profile.set_shape(inp.name, (lo, c, h, w), (opt, c, h, w), (hi, c, h, w))
    config.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise StageError("engine", "TensorRT failed to build the engine (see the log above)")
    write_with(plan_path, lambda tmp: tmp.write_bytes(bytes(serialized)), force)
    if options.timing_cache:
        write_with(options.timing_cache, lambda tmp: tmp.write_bytes(bytes(config.get_timing_cache().serialize())), True)
    io = [{"name": network.get_input(i).name, "shape": list(network.get_input(i).shape), "dtype": str(network.get_input(i).dtype)}
          for i in range(network.num_inputs)]
    io += [{"name": network.get_output(i).name, "shape": list(network.get_output(i).shape), "dtype": str(network.get_output(i).dtype),
            "output": True} for i in range(network.num_outputs)]
    write_json(sidecar_path(plan_path), sidecar(options, io, lib, trt.__version__, ModelRecord.from_onnx(Path(onnx_path))), force=True)
    return Path(plan_path)


def plugin_embedded(options: EngineOptions) -> bool:
    """TensorRT serializes plugin libraries only into version-compatible engines."""
    return options.serialize_plugin and options.version_compatible


def sidecar_path(plan_path: Path) -> Path:
    return Path(plan_path).with_suffix(Path(plan_path).suffix + ".json")


def sidecar(options: EngineOptions, io: list[dict[str, Any]], plugin_lib: Path | None, trt_version: str,
            record: ModelRecord) -> dict[str, Any]:
    """The JSON written beside an engine: what it is (the ONNX file's ModelRecord), how it was built, what it needs."""
    from .. import __version__
    from ..export.opdef import PLUGIN_NAMESPACE, PLUGIN_VERSION

    return {
        "model": record.alias,
        "record": record.to_json(),
        "batch_independent": record.batch_independent,
        "precision": options.precision,
        "tensorrt_version": trt_version,
        "plugin": {"name": "SaintTokenDrop", "version": PLUGIN_VERSION, "namespace": PLUGIN_NAMESPACE,
                   "library": str(plugin_lib) if plugin_lib else None, "serialized_into_engine": plugin_embedded(options)},
        "saint_export_version": __version__,
        "io": io,
        "build_options": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(options).items()},
    }


def read_sidecar(plan: Path) -> dict[str, Any]:
    path = sidecar_path(plan)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"{path} not found: build the engine with 'saint-export MODEL --engine {plan}' (it writes the sidecar)") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"cannot read engine sidecar {path}: {exc}") from None


def record_of_engine(plan: Path) -> ModelRecord:
    return ModelRecord.from_json(read_sidecar(plan).get("record") or {}, f"{sidecar_path(plan)}")


class _OutputAllocator:
    """TensorRT IOutputAllocator backed by torch CUDA buffers (for data-dependent outputs)."""

    def __new__(cls, trt):
        class Allocator(trt.IOutputAllocator):
            def __init__(self):
                super().__init__()
                self.buffers: dict[str, torch.Tensor] = {}
                self.shapes: dict[str, tuple[int, ...]] = {}

            def reallocate_output(self, name, memory, size, alignment):
                buf = torch.empty(max(int(size), 1), dtype=torch.uint8, device="cuda")
                self.buffers[name] = buf
                return buf.data_ptr()

            def reallocate_output_async(self, name, memory, size, alignment, stream):
                return self.reallocate_output(name, memory, size, alignment)

            def notify_shape(self, name, shape):
                self.shapes[name] = tuple(shape)

        return Allocator()


_TORCH_DTYPES = {"FLOAT": torch.float32, "HALF": torch.float16, "BF16": torch.bfloat16, "INT64": torch.int64, "INT32": torch.int32}


def _torch_dtype(trt_dtype) -> torch.dtype:
    return _TORCH_DTYPES[str(trt_dtype).split(".")[-1]]


class TrtRunner:
    """Deserialize an engine and run it on torch tensors (inputs moved to the GPU)."""

    def __init__(self, plan_path: Path, plugin_library: Path | None = None):
        trt = require_tensorrt()
        lib = plugin_library_path(plugin_library)
        if lib is not None:
            load_plugin_library(lib)
        self.trt = trt
        self.runtime = trt.Runtime(_logger(trt))
        try:
            data = Path(plan_path).read_bytes()
        except OSError as exc:
            raise InputError(f"cannot read engine {plan_path}: {exc.strerror}") from None
        self.engine = self.runtime.deserialize_cuda_engine(data)
        if self.engine is None:
            raise StageError("engine", f"cannot deserialize {plan_path} (other TensorRT version or GPU, or plugin missing)")
        self.context = self.engine.create_execution_context()
        self.names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]

    def run(self, pixels: torch.Tensor) -> torch.Tensor:
        trt = self.trt
        stream = torch.cuda.current_stream()
        outputs: dict[str, torch.Tensor] = {}
        allocator = _OutputAllocator(trt)
        keep = []
        for name in self.names:
            if self.engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
                x = pixels.to("cuda", _torch_dtype(self.engine.get_tensor_dtype(name))).contiguous()
                keep.append(x)
                self.context.set_input_shape(name, tuple(x.shape))
                self.context.set_tensor_address(name, x.data_ptr())
        for name in self.names:
            if self.engine.get_tensor_mode(name) == trt.TensorIOMode.OUTPUT:
                shape = tuple(self.context.get_tensor_shape(name))
                if any(d < 0 for d in shape):
                    self.context.set_output_allocator(name, allocator)
                else:
                    outputs[name] = torch.empty(shape, dtype=_torch_dtype(self.engine.get_tensor_dtype(name)), device="cuda")
                    self.context.set_tensor_address(name, outputs[name].data_ptr())
        if not self.context.execute_async_v3(stream.cuda_stream):
            raise StageError("engine", "execute_async_v3 failed")
        stream.synchronize()
        for name, buf in allocator.buffers.items():
            dtype = _torch_dtype(self.engine.get_tensor_dtype(name))
            shape = allocator.shapes[name]
            count = int(torch.tensor(shape).prod().item()) if shape else 1
            outputs[name] = buf.view(dtype)[:count].view(shape)
        out_names = [n for n in self.names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        return outputs[out_names[0]].float().cpu()


def run_single_plugin(tokens: torch.Tensor, metric: torch.Tensor, threshold: float, k: int, gamma: float,
                      protected: int, fixed_r: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Build a network holding one SaintTokenDrop plugin layer, run it, return (tokens_out, kept_index)."""
    import numpy as np

    trt = require_tensorrt()
    logger = _logger(trt)
    creator = trt.get_plugin_registry().get_creator("SaintTokenDrop", "1", "saint")
    if creator is None:
        raise MissingDependencyError("the SaintTokenDrop creator is not registered: load libsaint_plugins.so first")
    fields = trt.PluginFieldCollection([
        trt.PluginField("threshold", np.array([threshold], np.float32), trt.PluginFieldType.FLOAT32),
        trt.PluginField("k", np.array([k], np.int32), trt.PluginFieldType.INT32),
        trt.PluginField("gamma", np.array([gamma], np.float32), trt.PluginFieldType.FLOAT32),
        trt.PluginField("protected", np.array([protected], np.int32), trt.PluginFieldType.INT32),
        trt.PluginField("fixed_r", np.array([fixed_r], np.int32), trt.PluginFieldType.INT32),
    ])
    plugin = creator.create_plugin("saint_token_drop", fields, trt.TensorRTPhase.BUILD)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    t = network.add_input("tokens", trt.float32, tuple(tokens.shape))
    m = network.add_input("metric", trt.float32, tuple(metric.shape))
    layer = network.add_plugin_v3([t, m], [], plugin)
    layer.get_output(0).name, layer.get_output(1).name = "tokens_out", "kept_index"
    network.mark_output(layer.get_output(0))
    network.mark_output(layer.get_output(1))
    config = builder.create_builder_config()
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise StageError("engine", "TensorRT failed to build the one-plugin network")
    engine = trt.Runtime(logger).deserialize_cuda_engine(serialized)
    context = engine.create_execution_context()
    ins = {"tokens": tokens.cuda().contiguous(), "metric": metric.cuda().contiguous()}
    for name, x in ins.items():
        context.set_tensor_address(name, x.data_ptr())
    allocator = _OutputAllocator(trt)
    for name in ("tokens_out", "kept_index"):
        context.set_output_allocator(name, allocator)
    stream = torch.cuda.current_stream()
    if not context.execute_async_v3(stream.cuda_stream):
        raise StageError("engine", "execute_async_v3 failed")
    stream.synchronize()
    out = []
    for name, dtype in (("tokens_out", torch.float32), ("kept_index", torch.int64)):
        shape = allocator.shapes[name]
        count = int(np.prod(shape))
        out.append(allocator.buffers[name].view(dtype)[:count].view(shape).cpu())
    return out[0], out[1]
