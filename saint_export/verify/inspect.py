"""``saint-export inspect``: per-layer token counts, r per pruning layer, FLOPs dense vs SAINT."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..io import write_json
from ..models.build import BuiltModel
from ..plots import plot_tokens
from ..reference.patch import pruning
from .analysis import BlockTokens, dense_tokens, trace_tokens, vit_flops
from .compare import agreement, describe_agreement


@dataclass
class InspectReport:
    model: str
    source: str  # timm name or hf:<id>
    weights: str
    batch: int
    inputs: list[str]
    protected: int
    blocks: list[BlockTokens]
    flops_dense: int
    flops_saint: int
    agreement: dict[str, float]  # SAINT vs dense: top1 for classifiers, cosine/cosine_min/nn for backbones
    schedule: list[dict[str, Any]] = field(default_factory=list)

    @property
    def flop_ratio(self) -> float:
        return self.flops_dense / self.flops_saint

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["blocks"] = [{**asdict(b), "r": b.r} for b in self.blocks]
        data["flop_ratio"] = self.flop_ratio
        return data

    def table(self) -> str:
        lines = [f"{self.model} ({self.source}, weights {self.weights}), batch {self.batch}, protected tokens {self.protected}",
                 f"{'block':>5} {'tokens in':>9} {'tokens out':>10} {'r':>4}  pruning"]
        for b in self.blocks:
            lines.append(f"{b.block:>5} {b.tokens_in:>9} {b.tokens_out:>10} {b.r:>4}  {'yes' if b.prunes else ''}")
        lines.append(f"GFLOPs/image: dense {self.flops_dense / 1e9:.2f}, SAINT {self.flops_saint / 1e9:.2f} "
                     f"(x{self.flop_ratio:.2f} fewer); SAINT vs dense: {describe_agreement(self.agreement)}"
                     + (" (random weights: says nothing about a trained model)" if self.weights.startswith("random") else ""))
        return "\n".join(lines)


@torch.no_grad()
def inspect_model(built: BuiltModel, pixels: torch.Tensor, names: list[str]) -> InspectReport:
    model = built.module
    with pruning(model, False):
        dense_blocks, dense_logits = trace_tokens(model, pixels)
    blocks, logits = trace_tokens(model, pixels)
    n0 = dense_blocks[0].tokens_in
    return InspectReport(
        model=built.config.alias,
        source=built.config.source_name,
        weights=built.weights,
        batch=int(pixels.shape[0]),
        inputs=names,
        protected=built.protected,
        blocks=blocks,
        flops_dense=vit_flops(model, dense_tokens(model, n0)),
        flops_saint=vit_flops(model, blocks),
        agreement=agreement(logits.numpy(), dense_logits.numpy(), built.classifier),
        schedule=built.schedule.to_json(),
    )


def write_inspect_outputs(report: InspectReport, plot: Path, json_path: Path, force: bool = False) -> None:
    """The tokens-per-block PNG and the JSON report, each replaced atomically."""

    dense = [b.tokens_in for b in report.blocks[:1]] * len(report.blocks)
    plot_tokens(plot, f"{report.model}: tokens per block (batch {report.batch})",
                {"dense": dense, "SAINT": [b.tokens_out for b in report.blocks]}, force)
    write_json(json_path, report.to_json(), force)
