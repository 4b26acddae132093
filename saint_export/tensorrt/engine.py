"""TensorRT through Polygraphy's loaders and runners: ``engine_loaders`` (what we hand Polygraphy
to build an engine from the TensorRT-lowered ONNX), ``engine_from_onnx`` (build, save atomically,
write the sidecar), ``engine_runner`` (Polygraphy's ``TrtRunner`` over a saved plan, with the
plugin loaded), and ``run_single_plugin`` (a one-plugin network, for testing the plugin).

Polygraphy imports TensorRT only when a loader runs, so every loader can be built and inspected
on a machine without TensorRT; running one needs TensorRT and a CUDA GPU, and
:func:`require_tensorrt` turns their absence into one clear line (exit code 5).

Ours, because Polygraphy has no place for them: the sidecar (``sidecar.py``), the batch profile
from ``EngineOptions``, and the plugin library's lookup.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..errors import InputError, MissingDependencyError, StageError
from ..export.opdef import DOMAIN
from ..io import write_json, write_with
from ..models.record import ModelRecord
from .sidecar import sidecar, sidecar_path

PLUGIN_LIB = "libsaint_plugins.so"
ENV_PLUGIN_LIB = "SAINT_PLUGIN_LIB"
PRECISIONS = ("fp32", "fp16", "bf16")
INPUT_NAME = "pixels"


def polygraphy_trt():
    """``polygraphy.backend.trt``, quiet but for errors (no TensorRT import happens here)."""
    from ..verify.runners import quiet_polygraphy

    quiet_polygraphy("ERROR")
    from polygraphy.backend import trt as poly_trt

    return poly_trt


def require_tensorrt():
    """Return the ``tensorrt`` module, or raise MissingDependencyError saying what is missing."""
    try:
        import tensorrt
    except ImportError:
        raise MissingDependencyError(
            "TensorRT is not installed: the ONNX files are written; to build an engine install TensorRT "
            "(pip install 'saint-export[tensorrt]' on a machine with an NVIDIA GPU) and build plugins/ with CMake"
        ) from None
    import torch

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


def require_plugin_library(explicit: str | Path | None = None) -> Path:
    lib = plugin_library_path(explicit)
    if lib is None:
        raise MissingDependencyError(f"{PLUGIN_LIB} not found: build plugins/ with CMake or set ${ENV_PLUGIN_LIB}")
    return lib


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


def engine_loaders(onnx_path: Path, options: EngineOptions, lib: Path | None, input_shape: tuple[int, int, int]) -> EngineLoaders:
    """Polygraphy loaders: the plugin (``lib``; None for a graph of standard ops) loaded before parsing; one profile over the batch for
    ``pixels`` [B, *input_shape]; precision, builder optimization level, timing cache (read and
    written), version compatibility (lean runtime excluded when the plugin is serialized)."""
    poly = polygraphy_trt()
    options.validate()
    lo, opt, hi = options.batch
    profile = poly.Profile().add(INPUT_NAME, (lo, *input_shape), (opt, *input_shape), (hi, *input_shape))
    cache = str(options.timing_cache) if options.timing_cache else None
    create = poly.CreateConfig(
        profiles=[profile], fp16=options.precision == "fp16", bf16=options.precision == "bf16",
        builder_optimization_level=options.optimization_level, load_timing_cache=cache,
        version_compatible=options.version_compatible or None,
        exclude_lean_runtime=(options.plugin_embedded and lib is not None) or None)
    network = poly.NetworkFromOnnxPath(str(onnx_path))
    if lib is not None:
        network = poly.LoadPlugins(plugins=[str(lib)], obj=network)
    config = poly.PostprocessConfig(create, builder_settings(options, lib))
    return EngineLoaders(network, config, poly.EngineBytesFromNetwork(network, config, save_timing_cache=cache))


def _input_shape(proto) -> tuple[int, int, int]:
    from ..export.pipeline import graph_io

    pixels = next((io for io in graph_io(proto) if io["name"] == INPUT_NAME and not io["output"]), None)
    if pixels is None or len(pixels["shape"]) != 4 or min(pixels["shape"][1:]) < 1:
        raise InputError(f"the model has no input '{INPUT_NAME}' [B, 3, H, W] with static C, H, W")
    return tuple(pixels["shape"][1:])


def engine_from_onnx(onnx_path: Path, plan_path: Path, options: EngineOptions, force: bool = False) -> Path:
    """Build the TensorRT-lowered ONNX with Polygraphy, write ``plan_path`` and its ``.json``
    sidecar atomically. Returns ``plan_path``."""
    from ..export.pipeline import graph_io, read_proto

    proto = read_proto(Path(onnx_path))
    needs_plugin = any(node.domain == DOMAIN for node in proto.graph.node)  # a LLaVA iterative encoder has none
    lib = require_plugin_library(options.plugin_library) if needs_plugin else None
    loaders = engine_loaders(Path(onnx_path), options, lib, _input_shape(proto))
    trt = require_tensorrt()
    poly = polygraphy_trt()
    try:
        write_with(plan_path, lambda tmp: poly.SaveEngine(loaders.engine_bytes, str(tmp))(), force)
    except Exception as exc:  # Polygraphy reports a failed parse or build as PolygraphyException
        raise StageError("engine", f"TensorRT could not build {onnx_path}: {str(exc).strip()[:500]}") from None
    record = ModelRecord.from_onnx(Path(onnx_path))
    write_json(sidecar_path(plan_path), sidecar(options, graph_io(proto), lib, trt.__version__, record),
               force=True)
    return Path(plan_path)


def engine_runner(plan: Path, plugin_library: Path | None = None):
    """Polygraphy's TrtRunner over a saved engine (it attaches an output allocator for data-dependent
    shapes, and allows host code for version-compatible engines); the plugin is loaded first when found."""
    poly = polygraphy_trt()
    from polygraphy.backend.common import BytesFromPath

    plan = Path(plan)
    if not plan.is_file():
        raise InputError(f"engine {plan} does not exist")
    lib = plugin_library_path(plugin_library)
    engine = poly.EngineFromBytes(BytesFromPath(str(plan)))
    return poly.TrtRunner(poly.LoadPlugins(plugins=[str(lib)] if lib else [], obj=engine), name=plan.stem)


def single_plugin_network(shapes: dict[str, tuple[int, ...]], fields: dict[str, tuple[Any, str]]) -> Callable[[], Any]:
    """A callable giving (builder, network) with one SaintTokenDrop layer over float32 inputs
    ``tokens``/``metric`` of ``shapes``; ``fields``: name -> (value, "float" | "int")."""
    def network():
        import tensorrt as trt

        builder, net = polygraphy_trt().CreateNetwork()()
        creator = trt.get_plugin_registry().get_creator("SaintTokenDrop", "1", "saint")
        if creator is None:
            raise MissingDependencyError("the SaintTokenDrop creator is not registered: load libsaint_plugins.so first")
        collection = trt.PluginFieldCollection([
            trt.PluginField(name, np.array([value], np.float32 if kind == "float" else np.int32),
                            trt.PluginFieldType.FLOAT32 if kind == "float" else trt.PluginFieldType.INT32)
            for name, (value, kind) in fields.items()])
        plugin = creator.create_plugin("saint_token_drop", collection, trt.TensorRTPhase.BUILD)
        inputs = [net.add_input(name, trt.float32, shape) for name, shape in shapes.items()]
        layer = net.add_plugin_v3(inputs, [], plugin)
        for i, name in enumerate(("tokens_out", "kept_index")):
            layer.get_output(i).name = name
            net.mark_output(layer.get_output(i))
        return builder, net
    return network


def run_single_plugin(tokens, metric, threshold: float, k: int, gamma: float, protected: int, fixed_r: int):
    """Build a one-plugin network with Polygraphy, run it with its TrtRunner: (tokens_out, kept_index) as torch tensors."""
    import torch

    require_tensorrt()
    poly = polygraphy_trt()
    fields = {"threshold": (threshold, "float"), "k": (k, "int"), "gamma": (gamma, "float"),
              "protected": (protected, "int"), "fixed_r": (fixed_r, "int")}
    network = single_plugin_network({"tokens": tuple(tokens.shape), "metric": tuple(metric.shape)}, fields)
    with poly.TrtRunner(poly.EngineFromNetwork(network)) as runner:
        out = runner.infer({"tokens": tokens.float().numpy(), "metric": metric.float().numpy()})
    return torch.as_tensor(np.asarray(out["tokens_out"])), torch.as_tensor(np.asarray(out["kept_index"]))
