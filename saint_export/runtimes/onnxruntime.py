"""onnxruntime: the portable model (the SaintTokenDrop op as a model-local ONNX function), all graph
optimisations on, the CPU or CUDA provider; intermediate values (``kept_index``) exposed on request."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import onnx

from ..errors import InputError, MissingDependencyError
from ..export.opdef import DOMAIN, OP_TYPE
from ..onnx_file import read_proto
from ..polygraphy_log import quiet_polygraphy
from .base import Artifacts, Runtime


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


def require_portable(proto, path: Path, runtime: str = "onnxruntime") -> None:
    """``runtime`` runs only the portable model; say so in one line for the TensorRT-lowered one."""
    has_plugin_nodes = any(n.domain == DOMAIN and n.op_type == OP_TYPE for n in proto.graph.node)
    has_function = any(f.domain == DOMAIN and f.name == OP_TYPE for f in proto.functions)
    if has_plugin_nodes and not has_function:
        portable = path.with_name(path.name.removesuffix(".trt.onnx") + ".onnx") if path.name.endswith(".trt.onnx") else None
        hint = f"validate the portable {portable}" if portable else "validate the portable .onnx written beside it"
        raise InputError(f"{path} is the TensorRT-lowered model (SaintTokenDrop plugin nodes, no ONNX function): "
                         f"{runtime} cannot run it; {hint}, or build an engine with --engine")


def ort_session(path: Path, device: str = "cpu", extra_outputs: tuple[str, ...] = ()):
    """An onnxruntime session (all graph optimisations) that also returns the named intermediate values."""
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


def ort_runner(path: Path, device: str = "cpu", extra_outputs: tuple[str, ...] = (), name: str = "onnxruntime"):
    """Polygraphy's OnnxrtRunner over :func:`ort_session` (the device's providers, ``extra_outputs`` exposed)."""
    quiet_polygraphy()
    from polygraphy.backend.onnxrt import OnnxrtRunner

    session = ort_session(Path(path), device, tuple(extra_outputs))
    return OnnxrtRunner(session, name=name)


def _artifact(artifacts: Artifacts, variant: str, max_batch: int) -> Path:
    return artifacts.portable(variant)


def _require() -> None:
    onnxruntime()


RUNTIME = Runtime("onnxruntime", "ort", ".onnx", ort_runner, lambda device: providers(device)[0], require=_require,
                  artifact=_artifact)
