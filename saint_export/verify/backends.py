"""The runtimes a comparison runs: PyTorch (dense and SAINT), onnxruntime, TensorRT. Each is a
callable ``pixels [B, 3, S, S] -> output [B, K]``; ``backends_for_target`` rebuilds the PyTorch
reference of an alias, a portable ``.onnx`` or a ``.plan`` from its one provenance record."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..errors import InputError, MissingDependencyError
from ..export.opdef import DOMAIN, OP_TYPE
from ..export.pipeline import onnx_models_from_torch
from ..models.build import BuiltModel, build_named
from ..models.record import built_from_onnx
from ..onnx_file import read_proto
from ..reference.patch import pruning
from ..tensorrt.engine import activate, engine_runner, require_tensorrt
from ..tensorrt.sidecar import record_of_engine

Backend = Callable[[torch.Tensor], np.ndarray]


def onnxruntime():
    """The onnxruntime module, or one line saying which build to install."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise MissingDependencyError("onnxruntime is not installed: pip install 'saint-export[cpu]' "
                                     "(or 'saint-export[gpu]' for onnxruntime-gpu)") from None
    return ort


def providers(device: str) -> list[str]:
    ort = onnxruntime()
    if device == "cuda":
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise MissingDependencyError("onnxruntime has no CUDA provider here: pip install 'saint-export[gpu]' "
                                         "(onnxruntime-gpu instead of onnxruntime) on a machine with an NVIDIA GPU")
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def require_portable(proto, path: Path) -> None:
    """onnxruntime runs only the portable model; say so in one line for the TensorRT-lowered one."""

    has_plugin_nodes = any(n.domain == DOMAIN and n.op_type == OP_TYPE for n in proto.graph.node)
    has_function = any(f.domain == DOMAIN and f.name == OP_TYPE for f in proto.functions)
    if has_plugin_nodes and not has_function:
        portable = path.with_name(path.name.removesuffix(".trt.onnx") + ".onnx") if path.name.endswith(".trt.onnx") else None
        hint = f"validate the portable {portable}" if portable else "validate the portable .onnx written beside it"
        raise InputError(f"{path} is the TensorRT-lowered model (SaintTokenDrop plugin nodes, no ONNX function): "
                         f"onnxruntime cannot run it; {hint}, or build an engine with --engine")


def ort_session(path: Path, device: str = "cpu", extra_outputs: tuple[str, ...] = ()):
    """An onnxruntime session (all graph optimisations) that also returns the named intermediate values."""
    import onnx

    ort = onnxruntime()
    path = Path(path)
    proto = read_proto(path)
    require_portable(proto, path)
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    have = {o.name for o in proto.graph.output}
    missing = [name for name in extra_outputs if name not in have]
    if not missing:
        return _session(str(path), opts, providers(device), path)
    for name in missing:
        proto.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
    # written beside the original so relative external-data paths still resolve
    fd, tmp = tempfile.mkstemp(suffix=".onnx", prefix=".validate.", dir=path.parent)
    os.close(fd)
    try:
        onnx.save(proto, tmp)
        return _session(tmp, opts, providers(device), path)
    finally:
        os.unlink(tmp)


def _session(file: str, opts, provider_list: list[str], path: Path):
    try:
        return onnxruntime().InferenceSession(file, opts, providers=provider_list)
    except Exception as exc:
        raise InputError(f"onnxruntime cannot load {path}: {str(exc).splitlines()[0][:300]}") from None


def torch_backends(built: BuiltModel) -> dict[str, Backend]:
    module = built.module

    def run(pruned: bool) -> Backend:
        @torch.no_grad()
        def fn(pixels: torch.Tensor) -> np.ndarray:
            with pruning(module, pruned):
                return module(pixels).numpy()
        return fn

    return {"torch dense": run(False), "torch SAINT": run(True)}


def ort_backend(onnx_path: Path, device: str = "cpu") -> Backend:
    session = ort_session(onnx_path, device)
    return lambda pixels: session.run(["logits"], {"pixels": pixels.numpy()})[0]


def trt_backend(plan: Path) -> Backend:
    import atexit

    runner = activate(engine_runner(plan), plan)
    atexit.register(runner.deactivate)  # the context and its device buffers live as long as the backend is used
    return lambda pixels: np.asarray(runner.infer({"pixels": pixels.numpy()})["logits"], dtype=np.float32)


def backends_for_target(target: str, tmp: Path, model_name: str | None, checkpoint: str | None, weights: str | None,
                        device: str, progress: Callable[[str], None]) -> tuple[BuiltModel, dict[str, Backend]]:
    """The PyTorch reference and the backends for a ``.plan`` (TensorRT), a ``.onnx`` (onnxruntime)
    or a model name (exported to ``tmp`` first, then onnxruntime)."""

    path = Path(target)
    if target.endswith(".plan"):
        if not path.is_file():
            raise InputError(f"engine {target} does not exist")
        require_tensorrt(onnx_written=False)
        built = record_of_engine(path).rebuild(model_name, checkpoint, weights, where=target)
        return built, {**torch_backends(built), "tensorrt": trt_backend(path)}
    if target.endswith(".onnx"):
        if not path.is_file():
            raise InputError(f"ONNX model {target} does not exist")
        built = built_from_onnx(path, model_name, checkpoint, weights)
    else:
        built = build_named(target, weights or "random", checkpoint)
        path = tmp / "model.onnx"
        progress("exporting a portable ONNX model")
        onnx_models_from_torch(built, path, None)
    return built, {**torch_backends(built), "onnxruntime": ort_backend(path, device)}
