"""Compare an exported model with the PyTorch reference on the same inputs through Polygraphy's
Comparator (PyTorch SAINT and onnxruntime as runners): every output is compared and reported
before the verdict.

Outputs compared: ``logits`` (max abs / rel error against per-output tolerances) and, for
each pruning block, ``kept_index_block{i}`` (token count and every index must be identical).
Fidelity: top-1 agreement for classifiers, embedding cosine for backbones.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..inputs import gather_inputs
from ..models.build import BuiltModel
from ..onnx_file import read_proto
from ..reference.ops import recording
from ..reference.patch import pruning
from ..runtimes import registry
from .analysis import dense_tokens, trace_tokens, vit_flops
from .compare import (
    ReportHead,
    agreement,
    describe_agreement,
    output_rows,
    parse_tolerances,
)
from .comparison import DENSE, REFERENCE, TorchSide, compare_with_torch
from .invariance import FP16_INVARIANCE, TOLERANCE, batch_vs_alone
from .runners import save_for_polygraphy


@dataclass
class ValidationReport(ReportHead):
    tokens_torch: list[int]  # tokens after each pruning block
    tokens_onnx: list[int]
    onnx_vs_torch_saint: dict[str, float]  # agreement(): top1, or cosine/cosine_min/nn
    onnx_vs_torch_dense: dict[str, float]
    torch_saint_vs_dense: dict[str, float]
    flop_ratio: float  # dense FLOPs / SAINT FLOPs at these inputs' token counts
    batch_vs_alone: dict[str, float] = field(default_factory=dict)  # batch-invariant schedules: torch / onnx
    batch_vs_alone_tolerance: float = TOLERANCE  # 1e-2 for fp16 models
    passed: bool = False
    failures: list[str] = field(default_factory=list)

    def table(self) -> str:
        lines = [f"validate {self.onnx} [{self.provider}] vs PyTorch ({self.model}), batch {self.batch}",
                 *output_rows(self.outputs)]
        lines.append(f"tokens after pruning blocks: torch {self.tokens_torch}  onnx {self.tokens_onnx}; "
                     f"FLOPs x{self.flop_ratio:.2f} fewer than dense")
        lines.append(f"agreement: onnx vs torch SAINT {describe_agreement(self.onnx_vs_torch_saint)}; onnx vs torch dense "
                     f"{describe_agreement(self.onnx_vs_torch_dense)} (torch SAINT vs dense {describe_agreement(self.torch_saint_vs_dense)})")
        if self.batch_vs_alone:
            lines.append("each sample in the batch vs alone (max |diff| / max(1, |out|)): "
                         + ", ".join(f"{k} {v:.2g}" for k, v in self.batch_vs_alone.items())
                         + f" (tolerance {self.batch_vs_alone_tolerance:g})")
        if self.weights.startswith("random"):
            lines.append("(random weights: agreement with dense says nothing about a trained model; use --weights or --checkpoint)")
        lines.append("PASS" if self.passed else "FAIL: " + "; ".join(self.failures))
        return "\n".join(lines)


def drop_output_names(proto) -> list[str]:
    """``kept_index`` output names of the SaintTokenDrop nodes, in graph order."""
    return [out for n in proto.graph.node if n.domain == "saint" for out in n.output[1:2]]


@torch.no_grad()
def validate_onnx(onnx_path: str | Path, built: BuiltModel, pixels: torch.Tensor, names: list[str], *,
                  tolerances: dict[str, tuple[float, float]] | None = None, device: str = "cpu",
                  backend: str = "onnxruntime") -> ValidationReport:
    """A ViT's portable ONNX, run by ``backend``, against PyTorch on ``pixels``: logits, every
    kept_index, tokens per layer, agreement, and (batch-invariant schedules) each sample vs alone."""
    onnx_path = Path(onnx_path)
    kept_names = drop_output_names(read_proto(onnx_path)) if onnx_path.is_file() else []
    module, traced = built.module, {}

    def torch_saint(feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        with recording() as drops:
            traced["blocks"], out = trace_tokens(module, torch.from_numpy(feed["pixels"]))
        traced["drops"] = drops
        return {"logits": out.numpy(), **{name: kept.numpy() for name, (_, kept) in zip(kept_names, drops)}}

    def torch_dense(feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        with pruning(module, False):
            return {"logits": module(torch.from_numpy(feed["pixels"])).numpy()}

    result = compare_with_torch(onnx_path, TorchSide(torch_saint, torch_dense, "logits", tuple(kept_names)), pixels,
                                tolerances=tolerances, device=device, backend=backend)
    ref, dense, got, drops = result.outputs[REFERENCE]["logits"], result.outputs[DENSE]["logits"], result.got, traced["drops"]
    tokens_torch = [int(k.shape[1]) for _, k in drops]
    tokens_onnx = [int(got[name].shape[1]) for name in kept_names]
    failures = result.failures + _count_failures(kept_names, tokens_torch, tokens_onnx)
    invariance = _batch_invariance(onnx_path, built, pixels, (ref, got["logits"]), device, backend) if (
        built.schedule.batch_invariant() and pixels.shape[0] > 1) else {}
    limit = FP16_INVARIANCE if result.fp16 else TOLERANCE
    failures += [f"{k}: a sample in the batch differs from its run alone by {v:.2g}" for k, v in invariance.items() if v > limit]
    return ValidationReport(
        model=built.config.alias, weights=built.weights, onnx=str(onnx_path), provider=result.provider, batch=int(pixels.shape[0]),
        inputs=names, outputs=result.checks, tokens_torch=tokens_torch, tokens_onnx=tokens_onnx,
        onnx_vs_torch_saint=agreement(got["logits"], ref, built.classifier),
        onnx_vs_torch_dense=agreement(got["logits"], dense, built.classifier),
        torch_saint_vs_dense=agreement(ref, dense, built.classifier),
        flop_ratio=vit_flops(module, dense_tokens(module, traced["blocks"][0].tokens_in)) / vit_flops(module, traced["blocks"]),
        batch_vs_alone=invariance, batch_vs_alone_tolerance=limit, passed=not failures, failures=failures)


def _count_failures(kept_names: list[str], tokens_torch: list[int], tokens_onnx: list[int]) -> list[str]:
    failures = []
    if len(kept_names) != len(tokens_torch):
        failures.append(f"the ONNX model has {len(kept_names)} SaintTokenDrop nodes, PyTorch ran {len(tokens_torch)}")
    if tokens_torch != tokens_onnx:
        failures.append("tokens kept per layer differ")
    return failures


def _batch_invariance(onnx_path: Path, built: BuiltModel, pixels: torch.Tensor, batched: tuple[np.ndarray, np.ndarray],
                      device: str, backend: str) -> dict[str, float]:
    """Each sample of the batch against its run alone, in PyTorch and in the runtime (``batched``: their batch outputs)."""
    runtime = registry.get(backend, device)
    alone = runtime.activate(runtime.runner(onnx_path, device, (), runtime.name), onnx_path)
    try:
        return {"torch": batch_vs_alone(lambda x: built.module(torch.from_numpy(x)).numpy(), pixels.numpy(), batched[0]),
                "onnx": batch_vs_alone(lambda x: alone.infer({"pixels": x})["logits"], pixels.numpy(), batched[1])}
    finally:
        alone.deactivate()


def validate_with_inputs(onnx_path: Path, built: BuiltModel, *, image_dir: str | None = None, batch: int = 8,
                         tol: tuple[str, ...] = (), device: str = "cpu", backend: str = "onnxruntime",
                         progress: Callable[[str], None] = lambda s: None, polygraphy_dir: Path | None = None,
                         force: bool = False) -> ValidationReport:
    """:func:`validate_onnx` on ``batch`` images from ``image_dir`` (default: photos + generated images);
    with ``polygraphy_dir``, also those inputs and PyTorch's logits in Polygraphy's formats."""

    tolerances = parse_tolerances(tol)
    pixels, names = gather_inputs(built.config, image_dir=image_dir, batch=batch)
    progress(f"validating {onnx_path} against PyTorch on {len(names)} images")
    report = validate_onnx(onnx_path, built, pixels, names, tolerances=tolerances, device=device, backend=backend)
    if polygraphy_dir is not None:
        with torch.no_grad():
            reference = built.module(pixels).numpy()
        save_for_polygraphy(Path(polygraphy_dir), {"pixels": pixels.numpy()}, {"logits": reference}, force=force)
    return report
