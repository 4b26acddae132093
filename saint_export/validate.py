"""Compare an exported model with the PyTorch reference on the same inputs, polygraphy-style:
every output is compared and reported before the verdict.

Outputs compared: ``logits`` (max abs / rel error against per-output tolerances) and, for
each pruning block, ``kept_index_block{i}`` (token count and every index must be identical).
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .errors import InputError, MissingDependencyError
from .models import BuiltModel
from .ops import recording
from .patch import pruning

DEFAULT_TOLERANCES = {"logits": (1e-4, 1e-4)}  # (atol, rtol); kept_index is exact in fp32
FP16_TOLERANCES = {"logits": (1e-2, 1e-2)}


@dataclass
class OutputCheck:
    name: str
    ref_shape: list[int]
    got_shape: list[int]
    max_abs: float
    max_rel: float
    atol: float
    rtol: float
    passed: bool
    note: str = ""


@dataclass
class ValidationReport:
    model: str
    onnx: str
    provider: str
    batch: int
    inputs: list[str]
    outputs: list[OutputCheck]
    tokens_torch: list[int]  # tokens after each pruning block
    tokens_onnx: list[int]
    top1_vs_torch_saint: float
    top1_vs_torch_dense: float
    torch_saint_vs_dense: float
    passed: bool = False
    failures: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def table(self) -> str:
        lines = [f"validate {self.onnx} [{self.provider}] vs PyTorch ({self.model}), batch {self.batch}",
                 f"{'output':<22} {'shape (ref)':<16} {'shape (onnx)':<16} {'max abs':>10} {'max rel':>10}  result"]
        for o in self.outputs:
            lines.append(f"{o.name:<22} {str(o.ref_shape):<16} {str(o.got_shape):<16} {o.max_abs:>10.3g} {o.max_rel:>10.3g}  "
                         f"{'PASS' if o.passed else 'FAIL'}{(' ' + o.note) if o.note else ''}")
        lines.append(f"tokens after pruning blocks: torch {self.tokens_torch}  onnx {self.tokens_onnx}")
        lines.append(f"top-1 agreement: onnx vs torch SAINT {self.top1_vs_torch_saint:.0%}, onnx vs torch dense "
                     f"{self.top1_vs_torch_dense:.0%} (torch SAINT vs dense {self.torch_saint_vs_dense:.0%})")
        lines.append("PASS" if self.passed else "FAIL: " + "; ".join(self.failures))
        return "\n".join(lines)


def parse_tolerances(items: tuple[str, ...]) -> dict[str, tuple[float, float]]:
    """``name=atol`` or ``name=atol:rtol`` -> {name: (atol, rtol)}."""
    tol: dict[str, tuple[float, float]] = {}
    for item in items:
        try:
            name, spec = item.split("=", 1)
            atol, _, rtol = spec.partition(":")
            tol[name] = (float(atol), float(rtol) if rtol else DEFAULT_TOLERANCES.get(name, (0.0, 0.0))[1])
        except ValueError:
            raise InputError(f"--tol {item!r}: expected NAME=ATOL or NAME=ATOL:RTOL") from None
    return tol


def providers(device: str) -> list[str]:
    import onnxruntime as ort

    available = ort.get_available_providers()
    if device == "cuda":
        if "CUDAExecutionProvider" not in available:
            raise MissingDependencyError("onnxruntime has no CUDA provider here: install onnxruntime-gpu on a machine with a GPU")
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def session_with_outputs(onnx_path: Path, extra_outputs: list[str], provider_list: list[str], proto=None):
    """An onnxruntime session that also returns the named intermediate values (``proto``: the
    file's ModelProto without external data, when the caller has it already; it is modified)."""
    import onnx
    import onnxruntime as ort

    from .export.pipeline import read_proto

    proto = proto if proto is not None else read_proto(onnx_path)
    have = {o.name for o in proto.graph.output}
    for name in extra_outputs:
        if name not in have:
            proto.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    # written beside the original so relative external-data paths still resolve
    fd, tmp = tempfile.mkstemp(suffix=".onnx", prefix=".validate.", dir=onnx_path.parent)
    os.close(fd)
    try:
        onnx.save(proto, tmp)
        return ort.InferenceSession(tmp, opts, providers=provider_list)
    except Exception as exc:
        raise InputError(f"onnxruntime cannot load {onnx_path}: {str(exc).splitlines()[0][:300]}") from None
    finally:
        os.unlink(tmp)


def drop_output_names(proto) -> list[str]:
    """``kept_index`` output names of the SaintTokenDrop nodes, in graph order."""
    return [out for n in proto.graph.node if n.domain == "saint" for out in n.output[1:2]]


def compare_output(name: str, ref: np.ndarray, got: np.ndarray, atol: float, rtol: float, exact_index: bool = True) -> OutputCheck:
    """One output against its reference: shape, max abs/rel error, pass if |d| <= atol + rtol*|ref| (integers: exact)."""
    if ref.shape != got.shape:
        return OutputCheck(name, list(ref.shape), list(got.shape), float("nan"), float("nan"), atol, rtol, False, "shape mismatch")
    if ref.dtype.kind in "iu":
        rows = int((ref != got).any(axis=-1).sum())
        note = "identical" if not rows else f"{rows} of {ref.shape[0]} rows differ" + ("" if exact_index else " (fp16: reported, not failed)")
        return OutputCheck(name, list(ref.shape), list(got.shape), float(np.abs(ref - got).max(initial=0)), 0.0, 0, 0,
                           rows == 0 or not exact_index, note)
    diff = np.abs(ref.astype(np.float64) - got.astype(np.float64))
    rel = diff / np.maximum(np.abs(ref.astype(np.float64)), 1e-12)
    passed = bool(np.all(diff <= atol + rtol * np.abs(ref)))
    return OutputCheck(name, list(ref.shape), list(got.shape), float(diff.max(initial=0)), float(rel.max(initial=0)), atol, rtol, passed)


@torch.no_grad()
def validate_onnx(onnx_path: str | Path, built: BuiltModel, pixels: torch.Tensor, names: list[str],
                  tolerances: dict[str, tuple[float, float]] | None = None, device: str = "cpu") -> ValidationReport:
    onnx_path = Path(onnx_path)
    if not onnx_path.is_file():
        raise InputError(f"ONNX model {onnx_path} does not exist")
    from .export.pipeline import proto_metadata, read_proto

    proto = read_proto(onnx_path)
    fp16 = proto_metadata(proto).get("precision") == "fp16"
    tol = {**(FP16_TOLERANCES if fp16 else DEFAULT_TOLERANCES), **(tolerances or {})}
    model = built.model
    with pruning(model, False):
        dense = model(pixels)
    with recording() as drops:
        ref_logits = model(pixels)
    kept_names = drop_output_names(proto)
    provider_list = providers(device)
    session = session_with_outputs(onnx_path, kept_names, provider_list, proto)
    got = session.run(["logits", *kept_names], {"pixels": pixels.numpy()})
    checks = [compare_output("logits", ref_logits.numpy(), got[0], *tol["logits"])]
    failures = []
    if len(kept_names) != len(drops):
        failures.append(f"the ONNX model has {len(kept_names)} SaintTokenDrop nodes, PyTorch ran {len(drops)}")
    for name, (_, kept), onnx_kept in zip(kept_names, drops, got[1:]):
        checks.append(compare_output(name, kept.numpy(), onnx_kept, 0, 0, exact_index=not fp16))
    tokens_torch = [int(k.shape[1]) for _, k in drops]
    tokens_onnx = [int(k.shape[1]) for k in got[1:]]
    failures += [f"{c.name}: {c.note or 'outside tolerance'}" for c in checks if not c.passed]
    if tokens_torch != tokens_onnx:
        failures.append("tokens kept per layer differ")
    top1 = got[0].argmax(-1)
    return ValidationReport(
        model=built.config.alias, onnx=str(onnx_path), provider=provider_list[0], batch=int(pixels.shape[0]), inputs=names,
        outputs=checks, tokens_torch=tokens_torch, tokens_onnx=tokens_onnx,
        top1_vs_torch_saint=float((top1 == ref_logits.argmax(-1).numpy()).mean()),
        top1_vs_torch_dense=float((top1 == dense.argmax(-1).numpy()).mean()),
        torch_saint_vs_dense=float((ref_logits.argmax(-1) == dense.argmax(-1)).float().mean()),
        passed=not failures, failures=failures,
    )
