"""TensorRT through Polygraphy's loaders and runners: ``engine_loaders`` (what we hand Polygraphy
to build an engine from the TensorRT-lowered ONNX), ``engine_from_onnx`` (build, save atomically,
write the sidecar), ``engine_runner`` (Polygraphy's ``TrtRunner`` over a saved plan, with the
plugin loaded).

Polygraphy imports TensorRT only when a loader runs, so every loader can be built and inspected
on a machine without TensorRT; running one needs TensorRT and a CUDA GPU, and
:func:`require_tensorrt` turns their absence into one clear line (exit code 5).

Ours, because Polygraphy has no place for them: the sidecar (``sidecar.py``), the batch profile
from ``EngineOptions``, and the plugin library's lookup.
"""

from __future__ import annotations

import ctypes
import os
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..errors import (
    ConfigError,
    InputError,
    MissingDependencyError,
    SaintExportError,
    StageError,
)
from ..export.fp16 import ConvertFloat16
from ..export.opdef import DOMAIN
from ..io import write_json, write_with
from ..models.record import ModelRecord
from ..onnx_file import graph_io, read_proto
from ..polygraphy_log import quiet_polygraphy
from .plugins import (
    LoadPluginLibraries,
    plugin_library_path,
    require_plugin_library,
    tensorrt_major,
)
from .sidecar import read_sidecar, sidecar, sidecar_path

PRECISIONS = ("fp32", "fp16", "bf16")
INPUT_NAME = "pixels"


def polygraphy_trt():
    """``polygraphy.backend.trt``, quiet but for errors (no TensorRT import happens here)."""

    quiet_polygraphy("ERROR")
    from polygraphy.backend import trt as poly_trt

    return poly_trt


def cuda_device_count() -> int | None:
    """CUDA devices seen by the CUDA runtime that Polygraphy drives TensorRT with (libcudart, not
    torch); None when no libcudart can be loaded."""
    polygraphy_trt()  # Polygraphy's logger quiet but for errors
    from polygraphy.cuda import wrapper

    try:
        handle = wrapper().handle
    except Exception:  # Polygraphy raises OSError or PolygraphyException when no libcudart loads
        return None
    count = ctypes.c_int(0)
    return count.value if handle.cudaGetDeviceCount(ctypes.byref(count)) == 0 else 0


def require_tensorrt(onnx_written: bool = True):
    """Return the ``tensorrt`` module, or raise MissingDependencyError saying what is missing."""
    try:
        import tensorrt
    except ImportError:
        written = "the ONNX files are written; " if onnx_written else ""
        raise MissingDependencyError(
            f"TensorRT is not installed: {written}to build or run an engine install TensorRT "
            "(pip install 'saint-export[tensorrt]' on a machine with an NVIDIA GPU) and build plugins/ with CMake"
        ) from None
    if not getattr(tensorrt, "__version__", None):
        raise MissingDependencyError("the 'tensorrt' module found has no __version__: it is not TensorRT's Python package "
                                     "(a stubs-only install?)")
    devices = cuda_device_count()
    if devices is None:
        raise MissingDependencyError("no CUDA runtime (libcudart.so) for Polygraphy to drive TensorRT with: "
                                     "pip install nvidia-cuda-runtime-cu12, or put its folder on LD_LIBRARY_PATH")
    if devices < 1:
        raise MissingDependencyError("no CUDA GPU is visible: TensorRT engines are built on the GPU they will run on")
    return tensorrt


def refuse_unsupported_precision(options: "EngineOptions", trt=None) -> None:
    """bf16 on TensorRT >= 11 in one line, before any work (``trt``: the module, else imported if installed)."""
    if trt is None:
        try:
            import tensorrt as trt
        except ImportError:
            return
    if options.precision == "bf16" and tensorrt_major(trt) >= 11:
        raise ConfigError(f"--precision bf16 needs a bfloat16 ONNX on TensorRT {trt.__version__} (networks are strongly "
                          "typed, there is no BF16 builder flag, and saint-export writes float32 and float16 ONNX): "
                          "use --precision fp16 or fp32")


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
            raise ConfigError(f"the engine's batch profile (--engine-batch min,opt,max) must satisfy 1 <= min <= opt <= max; "
                              f"got {','.join(map(str, self.batch))}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision must be one of {PRECISIONS}; got {self.precision!r}")
        if not 0 <= self.optimization_level <= 5:
            raise ConfigError(f"builder optimization level must be in 0..5; got {self.optimization_level}")
        return self

    @property
    def plugin_embedded(self) -> bool:
        """TensorRT serializes plugin libraries only into version-compatible engines."""
        return self.serialize_plugin and self.version_compatible


@dataclass
class EngineLoaders:
    """The Polygraphy loader chain for one engine; nothing runs until ``engine_bytes()`` is called."""

    network: Any  # LoadPlugins(NetworkFromOnnxPath)
    config: Any  # PostprocessConfig(CreateConfig, builder_settings)
    engine_bytes: Any  # EngineBytesFromNetwork


def builder_settings(options: EngineOptions, lib: Path | None) -> Callable[[Any, Any, Any], None]:
    """What CreateConfig has no argument for without importing TensorRT: the workspace pool limit,
    and the plugin library to serialize into version-compatible engines."""
    def apply(builder, network, config) -> None:
        import tensorrt as trt

        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, options.workspace_mib << 20)
        if options.plugin_embedded and lib is not None:
            config.plugins_to_serialize = [str(lib)]
    return apply


def engine_loaders(onnx_path: Path, options: EngineOptions, lib: Path | None, input_shape: tuple[int, int, int],
                   major: int = 10) -> EngineLoaders:
    """Polygraphy loaders: the plugin (``lib``; None for a graph of standard ops) loaded through the
    registry before parsing; one profile over the batch for ``pixels`` [B, *input_shape]; builder
    optimization level, timing cache (read and written), version compatibility (the lean runtime stays
    in the plan, so it runs on later TensorRT versions of the same major). Precision: TensorRT 10 takes
    the fp16/bf16 builder flags on a weakly typed network; TensorRT 11 has no such flags (networks are
    strongly typed), so ``onnx_path`` must already be float16 (:func:`engine_from_onnx` converts it).
    ``major``: the TensorRT major the loaders are for."""
    poly = polygraphy_trt()
    options.validate()
    lo, opt, hi = options.batch
    profile = poly.Profile().add(INPUT_NAME, (lo, *input_shape), (opt, *input_shape), (hi, *input_shape))
    cache = str(options.timing_cache) if options.timing_cache else None
    typed = major >= 11
    create = poly.CreateConfig(
        profiles=[profile], fp16=not typed and options.precision == "fp16", bf16=not typed and options.precision == "bf16",
        builder_optimization_level=options.optimization_level, load_timing_cache=cache,
        version_compatible=options.version_compatible or None)
    network = poly.NetworkFromOnnxPath(str(onnx_path), strongly_typed=typed or None)
    if lib is not None:
        network = LoadPluginLibraries([str(lib)], network)
    config = poly.PostprocessConfig(create, builder_settings(options, lib))
    return EngineLoaders(network, config, poly.EngineBytesFromNetwork(network, config, save_timing_cache=cache))


def _input_shape(proto) -> tuple[int, int, int]:
    pixels = next((io for io in graph_io(proto) if io["name"] == INPUT_NAME and not io["output"]), None)
    if pixels is None or len(pixels["shape"]) != 4 or min(pixels["shape"][1:]) < 1:
        raise InputError(f"the model has no input '{INPUT_NAME}' [B, 3, H, W] with static C, H, W")
    return tuple(pixels["shape"][1:])


def engine_from_onnx(onnx_path: Path, plan_path: Path, options: EngineOptions, force: bool = False) -> Path:
    """Build the TensorRT-lowered ONNX with Polygraphy, write ``plan_path`` (the serialized engine's
    bytes, through Polygraphy's SaveBytes) and its ``.json`` sidecar atomically. Returns ``plan_path``."""

    onnx_path = Path(onnx_path)
    proto = read_proto(onnx_path)
    needs_plugin = any(node.domain == DOMAIN for node in proto.graph.node)  # a LLaVA iterative encoder has none
    lib = require_plugin_library(options.plugin_library) if needs_plugin else None
    trt = require_tensorrt()
    major = tensorrt_major(trt)
    refuse_unsupported_precision(options, trt)
    from polygraphy.backend.common import SaveBytes

    with strongly_typed_source(onnx_path, options, major) as source:
        loaders = engine_loaders(source, options, lib, _input_shape(proto), major)
        try:
            write_with(plan_path, lambda tmp: SaveBytes(loaders.engine_bytes, str(tmp))(), force)
        except SaintExportError:  # ours, e.g. from loading the plugin library: already one line
            raise
        except Exception as exc:  # Polygraphy reports a failed parse or build as PolygraphyException
            raise StageError("engine", f"TensorRT could not build {onnx_path}: {str(exc).strip()[:500]}") from None
    record = ModelRecord.from_onnx(onnx_path)
    write_json(sidecar_path(plan_path), sidecar(options, graph_io(proto), lib, trt.__version__, record),
               force=True)
    return Path(plan_path)


@contextmanager
def strongly_typed_source(onnx_path: Path, options: EngineOptions, major: int):
    """The ONNX to parse: ``onnx_path``, or, for an fp16 engine on TensorRT >= 11 from a float32 model,
    a float16 copy (ConvertFloat16; interface float32) written beside it and removed afterwards."""
    if major < 11 or options.precision != "fp16" or _is_float16(onnx_path):
        yield onnx_path
        return
    import onnx_ir as ir

    model = ir.load(str(onnx_path))
    ConvertFloat16()(model)
    fd, tmp = tempfile.mkstemp(prefix=f".{onnx_path.stem}.", suffix=".fp16.onnx", dir=onnx_path.parent)
    os.close(fd)
    try:
        ir.save(model, tmp)
        yield Path(tmp)
    finally:
        Path(tmp).unlink(missing_ok=True)


def _is_float16(onnx_path: Path) -> bool:
    return any(t.data_type == 10 for t in read_proto(Path(onnx_path)).graph.initializer)  # onnx.TensorProto.FLOAT16


def engine_runner(plan: Path, plugin_library: Path | None = None, name: str | None = None):
    """Polygraphy's TrtRunner over a saved engine (it attaches an output allocator for data-dependent
    shapes, and allows host code for version-compatible engines). The plugin library is loaded through
    the registry first unless the sidecar says it is serialized into the engine (TensorRT loads that
    copy itself, and refuses a second registration of the same creator)."""
    poly = polygraphy_trt()
    from polygraphy.backend.common import BytesFromPath

    plan = Path(plan)
    if not plan.is_file():
        raise InputError(f"engine {plan} does not exist")
    info = read_sidecar(plan) if sidecar_path(plan).is_file() else {}
    plugin = info.get("plugin") if isinstance(info, dict) else None
    if info and (plugin is None or plugin.get("serialized_into_engine")):
        lib = None  # plain TensorRT layers, or the plan carries the plugin
    else:
        lib = plugin_library_path(plugin_library)  # without a sidecar: the plugin if there is one
        if plugin is not None and lib is None:
            raise MissingDependencyError(f"{plan} needs the SaintTokenDrop plugin: build plugins/ or set $SAINT_PLUGIN_LIB")
    engine = poly.EngineFromBytes(BytesFromPath(str(plan)))
    return poly.TrtRunner(LoadPluginLibraries([str(lib)] if lib else [], engine), name=name or plan.stem)


def activate(runner, plan: Path):
    """``runner.activate()``; a plan TensorRT cannot load (another version, a missing plugin) is one line."""
    try:
        runner.activate()
    except Exception as exc:  # PolygraphyException: the reason is in TensorRT's log, printed above it
        raise StageError("engine", f"TensorRT could not load the engine {plan}: {str(exc).strip()[:300]} "
                                   "(a plan runs on the TensorRT version that built it unless built --version-compatible)") from None
    return runner
