"""Validate an exported LLaVA vision encoder (``saint-export MODEL --vision``) against PyTorch on
the same images through Polygraphy's Comparator: ``image_embeds`` within tolerance, ``kept_index``
identical; beside the verdict, the image tokens the language model gets and how close the pruned
embeddings stay to stock LLaVA's (cosine of the mean-pooled embedding per image)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..inputs import gather_inputs
from ..models.llava import BuiltVision
from ..reference.patch import pruning
from .compare import (
    ReportHead,
    output_rows,
    parse_tolerances,
)
from .comparison import DENSE, TorchSide, compare_with_torch

EMBEDS, KEPT = "image_embeds", "kept_index"


@dataclass
class VisionReport(ReportHead):
    tokens_dense: int  # image features per image for the language model, stock LLaVA
    tokens_saint: int
    layers_run: int  # tower layers computed (up to the feature layer) of its depth
    depth: int
    pooled_cosine: dict[str, float] = field(default_factory=dict)  # SAINT (onnx) vs stock LLaVA: mean, worst
    passed: bool = False
    failures: list[str] = field(default_factory=list)

    def table(self) -> str:
        lines = [f"validate {self.onnx} [{self.provider}] vs PyTorch ({self.model} vision encoder), batch {self.batch}",
                 *output_rows(self.outputs, width=14)]
        lines.append(f"image tokens for the language model: {self.tokens_dense} -> {self.tokens_saint} per image "
                     f"({self.tokens_dense / max(self.tokens_saint, 1):.2f}x fewer); tower layers run: {self.layers_run} of {self.depth}")
        lines.append(f"mean-pooled image embedding, onnx SAINT vs stock LLaVA: cosine {self.pooled_cosine['mean']:.4f} "
                     f"(worst {self.pooled_cosine['worst']:.4f})")
        if self.weights.startswith("random"):
            lines.append("(random weights: closeness to stock LLaVA says nothing about a trained model; use --checkpoint)")
        lines.append("PASS" if self.passed else "FAIL: " + "; ".join(self.failures))
        return "\n".join(lines)


def _pooled_cosine(got: np.ndarray, ref: np.ndarray) -> dict[str, float]:
    a, b = got.astype(np.float64).mean(1), ref.astype(np.float64).mean(1)
    cos = (a * b).sum(-1) / np.maximum(np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1), 1e-12)
    return {"mean": float(cos.mean()), "worst": float(cos.min())}


@torch.no_grad()
def validate_vision(onnx_path: str | Path, built: BuiltVision, pixels: torch.Tensor, names: list[str], *,
                    tolerances: dict[str, tuple[float, float]] | None = None, device: str = "cpu",
                    backend: str = "onnxruntime") -> VisionReport:
    """A LLaVA vision encoder's portable ONNX, run by ``backend``, against PyTorch: image_embeds,
    kept_index, image tokens per image and closeness to stock LLaVA."""
    encoder = built.module

    def torch_saint(feed):
        embeds, kept = encoder(torch.from_numpy(feed["pixels"]))
        return {EMBEDS: embeds.numpy(), KEPT: kept.numpy()}

    def torch_dense(feed):
        with pruning(encoder.tower, False):
            return {EMBEDS: encoder(torch.from_numpy(feed["pixels"]))[0].numpy()}

    result = compare_with_torch(onnx_path, TorchSide(torch_saint, torch_dense, EMBEDS, (KEPT,)), pixels,
                                tolerances=tolerances, device=device, backend=backend)
    got, dense = result.got, result.outputs[DENSE][EMBEDS]
    return VisionReport(
        model=built.config.alias, weights=built.weights, onnx=str(onnx_path), provider=result.provider,
        batch=int(pixels.shape[0]), inputs=names, outputs=result.checks, tokens_dense=int(dense.shape[1]),
        tokens_saint=int(got[EMBEDS].shape[1]), layers_run=encoder.used, depth=len(encoder.tower.encoder.layers),
        pooled_cosine=_pooled_cosine(got[EMBEDS], dense), passed=not result.failures, failures=result.failures)


def validate_vision_with_inputs(onnx_path: Path, built: BuiltVision, *, image_dir: str | None = None, batch: int = 8,
                                tol: tuple[str, ...] = (), device: str = "cpu", backend: str = "onnxruntime",
                                progress: Callable[[str], None] = lambda s: None) -> VisionReport:
    """:func:`validate_vision` on ``batch`` images from ``image_dir`` (default: photos + generated images)."""

    pixels, names = gather_inputs(built.config, image_dir=image_dir, batch=batch)
    progress(f"validating {onnx_path} against PyTorch on {len(names)} images")
    return validate_vision(onnx_path, built, pixels, names, tolerances=parse_tolerances(tol), device=device, backend=backend)
