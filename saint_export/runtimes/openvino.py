"""OpenVINO (CPU) as a runtime for the portable ONNX model: a Polygraphy runner like onnxruntime's.

What differs from onnxruntime (``saint_export.runtimes.onnxruntime``):

* the SaintTokenDrop ONNX function is inlined first (``onnx.inliner.inline_local_functions``):
  OpenVINO's ONNX frontend refuses model-local functions ("No conversion rule found for operations:
  saint.SaintTokenDrop"); inlined, it is the same standard ops, with the same data-dependent token dims;
* ``INFERENCE_PRECISION_HINT: f32`` is forced: on CPUs with bf16/AMX OpenVINO's default inference
  precision is bf16, about 2x faster but logits off by ~0.3 on a tiny ViT (and ``kept_index`` may
  change); in f32 it matches onnxruntime to ~1e-5 and keeps the same tokens;
* CPU only here (``device="cuda"`` is refused in one line);
* the model is given to OpenVINO from memory (the inlined proto's bytes, external data included);
  a model too large for one protobuf (2 GiB) goes through a temporary copy beside the original.

Like onnxruntime, the TensorRT-lowered model (plugin nodes, no function) is refused in one line, and
each requested intermediate value (``kept_index_block{i}``) is exposed by appending it as a graph
output; its data-dependent shape comes back as is, int64.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import numpy as np

from ..errors import ConfigError, InputError, MissingDependencyError
from ..polygraphy_log import quiet_polygraphy
from .base import Artifacts, Runtime
from .onnxruntime import require_portable

PRECISION = {"INFERENCE_PRECISION_HINT": "f32"}
"""Compile configuration: f32, never OpenVINO's bf16 default (see the module docstring)."""

PROTOBUF_LIMIT = 2**31 - 2**24  # one serialized ModelProto must stay under 2 GiB; keep a margin


def openvino_module():
    """The ``openvino`` module, or one line saying how to install it."""
    try:
        import openvino
    except ImportError:
        raise MissingDependencyError("openvino is not installed: pip install 'saint-export[openvino]'") from None
    return openvino


def openvino_device(device: str) -> str:
    """Our device name -> OpenVINO's ("cpu" -> "CPU"); anything else in one line."""
    if device == "cpu":
        return "CPU"
    if device == "cuda":
        raise ConfigError("OpenVINO runs on CPU here: use device 'cpu' (or onnxruntime / TensorRT for CUDA)")
    raise ConfigError(f"unknown device {device!r} for OpenVINO: use 'cpu'")


def first_error_line(exc: BaseException) -> str:
    """The informative line of an OpenVINO error (its messages start with source-location lines)."""
    lines = [s.strip() for s in str(exc).splitlines() if s.strip()]
    located = ("Exception from ", "Check '")
    meaningful = [s for s in lines if not s.startswith(located)]
    summary = [s.removeprefix("-- ") for s in meaningful if s.startswith("-- ")]
    return (summary or meaningful or lines or [type(exc).__name__])[0][:300]


def lowered_for_openvino(path: Path, extra_outputs: tuple[str, ...] = ()):
    """The portable ONNX model at ``path`` as OpenVINO can read it: external data loaded, the
    SaintTokenDrop function inlined, ``extra_outputs`` appended as graph outputs. The
    TensorRT-lowered model and unknown output names are refused in one line."""
    import onnx
    import onnx.inliner

    path = Path(path)
    if not path.is_file():
        raise InputError(f"ONNX model {path} does not exist")
    try:
        proto = onnx.load(str(path), load_external_data=True)
    except Exception as exc:
        raise InputError(f"cannot read ONNX model {path}: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}") from None
    require_portable(proto, path, "OpenVINO")
    proto = onnx.inliner.inline_local_functions(proto)
    have = {o.name for o in proto.graph.output}
    produced = {out for node in proto.graph.node for out in node.output}
    for name in extra_outputs:
        if name in have:
            continue
        if name not in produced:
            raise ConfigError(f"{path} has no value named {name!r} to expose as an output")
        proto.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
        have.add(name)
    return proto


def read_openvino_model(core, path: Path, extra_outputs: tuple[str, ...] = ()):
    """An ``openvino.Model`` of :func:`lowered_for_openvino` (from memory, or from a temporary copy
    beside ``path`` when over the protobuf limit); InputError naming the file if OpenVINO refuses it."""
    import onnx

    path = Path(path)
    proto = lowered_for_openvino(path, extra_outputs)
    try:
        if proto.ByteSize() < PROTOBUF_LIMIT:
            return core.read_model(model=proto.SerializeToString())
        fd, tmp = tempfile.mkstemp(suffix=".onnx", prefix=".openvino.", dir=path.parent)
        os.close(fd)
        data = Path(tmp).name + ".data"
        try:
            onnx.save(proto, tmp, save_as_external_data=True, all_tensors_to_one_file=True, location=data)
            return core.read_model(tmp)  # a deleted file's mapped weights stay readable (POSIX)
        finally:
            for f in (Path(tmp), Path(tmp).with_name(data)):
                f.unlink(missing_ok=True)
    except Exception as exc:
        raise InputError(f"OpenVINO cannot read {path}: {first_error_line(exc)}") from None


def compile_openvino(core, model, path: Path, device: str = "cpu"):
    """``model`` compiled for ``device`` in f32 (:data:`PRECISION`); InputError naming ``path`` on failure."""
    target = openvino_device(device)
    try:
        return core.compile_model(model, target, dict(PRECISION))
    except Exception as exc:
        raise InputError(f"OpenVINO cannot compile {path} for {target}: {first_error_line(exc)}") from None


def _input_shape(model) -> tuple[int, ...]:
    """The pixels input's shape with a dynamic batch (-1 for every dynamic dim)."""
    shape = model.input("pixels").get_partial_shape()
    dims = [d.get_length() if d.is_static else -1 for d in shape]
    return (-1, *dims[1:])


def _output_names(compiled, wanted: tuple[str, ...]) -> list[tuple[object, str]]:
    """(port, name) for each compiled output: the requested name where a port carries several."""
    named = []
    for port in compiled.outputs:
        names = port.get_names()
        named.append((port, next((n for n in wanted if n in names), port.get_any_name())))
    return named


def openvino_runner(path: Path, device: str = "cpu", extra_outputs: tuple[str, ...] = (), name: str = "openvino"):
    """A Polygraphy runner over OpenVINO for the portable model at ``path``: returns every graph
    output (``logits``) and each of ``extra_outputs`` (``kept_index_block{i}``) with its data-dependent
    shape. The model is read and checked here; ``activate`` compiles it (f32) and makes one infer
    request, reused by every ``infer`` (batch sizes may change between calls)."""
    openvino_device(device)  # a CUDA request fails before the model is read
    ov = openvino_module()
    quiet_polygraphy()
    from polygraphy.backend.base import BaseRunner
    from polygraphy.common import TensorMetadata
    from polygraphy.datatype import DataType

    path, extra_outputs = Path(path), tuple(extra_outputs)
    core = ov.Core()
    model = read_openvino_model(core, path, extra_outputs)
    input_shape = _input_shape(model)

    class OpenVinoRunner(BaseRunner):
        def activate_impl(self):
            self.compiled = compile_openvino(core, model, path, device)
            self.request = self.compiled.create_infer_request()
            self.outputs = _output_names(self.compiled, ("logits", *extra_outputs))

        def deactivate_impl(self):
            del self.request, self.compiled, self.outputs

        def get_input_metadata_impl(self):
            return TensorMetadata().add("pixels", DataType.FLOAT32, input_shape)

        def infer_impl(self, feed_dict):
            pixels = np.ascontiguousarray(feed_dict["pixels"], dtype=np.float32)
            start = time.perf_counter()
            self.request.infer({"pixels": pixels})
            # copies: the request's output tensors are overwritten by the next call
            out = {key: np.array(self.request.get_tensor(port).data) for port, key in self.outputs}
            self.inference_time = time.perf_counter() - start
            return out

    return OpenVinoRunner(name=name)


def _artifact(artifacts: Artifacts, variant: str, max_batch: int) -> Path:
    return artifacts.portable(variant)


def _require() -> None:
    openvino_module()


RUNTIME = Runtime("openvino", "openvino", ".onnx", openvino_runner, lambda device: "OpenVINO CPU (f32)", require=_require,
                  artifact=_artifact, devices=("cpu",))
