"""Compare an exported model with the PyTorch reference on the same inputs through Polygraphy's
Comparator (PyTorch SAINT and onnxruntime as runners): every output is compared and reported
before the verdict.

Outputs compared: ``logits`` (max abs / rel error against per-output tolerances) and, for
each pruning block, ``kept_index_block{i}`` (token count and every index must be identical).
Fidelity: top-1 agreement for classifiers, embedding cosine for backbones.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from ..errors import InputError
from ..inputs import gather_inputs
from ..models.build import BuiltModel
from ..models.record import META_PREFIX
from ..onnx_file import read_proto
from ..reference.ops import recording
from ..reference.patch import pruning
from ..runtimes import registry
from .analysis import dense_tokens, trace_tokens, vit_flops
from .compare import (
    DEFAULT_TOLERANCES,
    FP16_TOLERANCES,
    ReportHead,
    agreement,
    check_tolerance_names,
    describe_agreement,
    index_note,
    output_rows,
    parse_tolerances,
)
from .invariance import FP16_INVARIANCE, TOLERANCE, batch_vs_alone
from .runners import compare, function_runner, save_for_polygraphy


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
def validate_onnx(onnx_path: str | Path, built: BuiltModel, pixels: torch.Tensor, names: list[str],
                  tolerances: dict[str, tuple[float, float]] | None = None, device: str = "cpu",
                  backend: str = "onnxruntime") -> ValidationReport:
    onnx_path = Path(onnx_path)
    if not onnx_path.is_file():
        raise InputError(f"ONNX model {onnx_path} does not exist")
    runtime = registry.get(backend, device)
    proto = read_proto(onnx_path)
    fp16 = any(p.key == META_PREFIX + "precision" and p.value == "fp16" for p in proto.metadata_props)
    tol = {**(FP16_TOLERANCES if fp16 else DEFAULT_TOLERANCES), **(tolerances or {})}
    module = built.module
    kept_names = drop_output_names(proto)
    check_tolerance_names(tolerances or {}, ["logits", *kept_names])
    traced: dict[str, Any] = {}

    def torch_saint(feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        with recording() as drops:
            traced["blocks"], out = trace_tokens(module, torch.from_numpy(feed["pixels"]))
        traced["drops"] = drops
        return {"logits": out.numpy(), **{name: kept.numpy() for name, (_, kept) in zip(kept_names, drops)}}

    def torch_dense(feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        with pruning(module, False):
            return {"logits": module(torch.from_numpy(feed["pixels"])).numpy()}

    shape = tuple(pixels.shape[1:])
    runners = [function_runner("torch SAINT", torch_saint, shape), function_runner("torch dense", torch_dense, shape),
               runtime.runner(onnx_path, device, tuple(kept_names), runtime.name)]
    # kept_index must be identical in fp32; in fp16 its differences are reported, not failed (shapes still must match)
    index_tol = (float("inf"), 0.0) if fp16 else (0.0, 0.0)
    outputs, found = compare(runners, {"pixels": pixels.numpy()}, {**tol, "": index_tol}, "torch SAINT", skip=("torch dense",))
    ours = runners[-1]
    ref, dense, got, drops = outputs["torch SAINT"]["logits"], outputs["torch dense"]["logits"], outputs[ours.name], traced["drops"]
    flop_ratio = vit_flops(module, dense_tokens(module, traced["blocks"][0].tokens_in)) / vit_flops(module, traced["blocks"])
    checks = [found[ours.name]["logits"]]
    failures = []
    if len(kept_names) != len(drops):
        failures.append(f"the ONNX model has {len(kept_names)} SaintTokenDrop nodes, PyTorch ran {len(drops)}")
    for name, (_, kept) in zip(kept_names, drops):
        check = found[ours.name][name]
        checks.append(replace(check, atol=0.0, rtol=0.0, note=check.note or index_note(kept.numpy(), got[name], not fp16)))
    tokens_torch = [int(k.shape[1]) for _, k in drops]
    tokens_onnx = [int(got[name].shape[1]) for name in kept_names]
    failures += [f"{c.name}: {c.note or 'outside tolerance'}" for c in checks if not c.passed]
    if tokens_torch != tokens_onnx:
        failures.append("tokens kept per layer differ")
    invariance = {}
    if built.schedule.batch_invariant() and pixels.shape[0] > 1:
        alone = runtime.activate(runtime.runner(onnx_path, device, (), runtime.name), onnx_path)
        try:
            invariance = {"torch": batch_vs_alone(lambda x: module(torch.from_numpy(x)).numpy(), pixels.numpy(), ref),
                          "onnx": batch_vs_alone(lambda x: alone.infer({"pixels": x})["logits"], pixels.numpy(), got["logits"])}
        finally:
            alone.deactivate()
        failures += [f"{k}: a sample in the batch differs from its run alone by {v:.2g}" for k, v in invariance.items()
                     if v > (FP16_INVARIANCE if fp16 else TOLERANCE)]
    return ValidationReport(
        model=built.config.alias, weights=built.weights, onnx=str(onnx_path), provider=runtime.describe(device), batch=int(pixels.shape[0]), inputs=names,
        outputs=checks, tokens_torch=tokens_torch, tokens_onnx=tokens_onnx,
        onnx_vs_torch_saint=agreement(got["logits"], ref, built.classifier),
        onnx_vs_torch_dense=agreement(got["logits"], dense, built.classifier),
        torch_saint_vs_dense=agreement(ref, dense, built.classifier), flop_ratio=flop_ratio, batch_vs_alone=invariance,
        batch_vs_alone_tolerance=FP16_INVARIANCE if fp16 else TOLERANCE,
        passed=not failures, failures=failures,
    )


def validate_with_inputs(onnx_path: Path, built: BuiltModel, *, image_dir: str | None = None, batch: int = 8,
                         tol: tuple[str, ...] = (), device: str = "cpu", backend: str = "onnxruntime",
                         progress: Callable[[str], None] = lambda s: None, polygraphy_dir: Path | None = None,
                         force: bool = False) -> ValidationReport:
    """:func:`validate_onnx` on ``batch`` images from ``image_dir`` (default: photos + generated images);
    with ``polygraphy_dir``, also those inputs and PyTorch's logits in Polygraphy's formats."""

    tolerances = parse_tolerances(tol)
    pixels, names = gather_inputs(built.config, image_dir=image_dir, batch=batch)
    progress(f"validating {onnx_path} against PyTorch on {len(names)} images")
    report = validate_onnx(onnx_path, built, pixels, names, tolerances, device, backend)
    if polygraphy_dir is not None:
        with torch.no_grad():
            reference = built.module(pixels).numpy()
        save_for_polygraphy(Path(polygraphy_dir), {"pixels": pixels.numpy()}, {"logits": reference}, force=force)
    return report
