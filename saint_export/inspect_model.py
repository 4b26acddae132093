"""``saint-export inspect``: per-layer token counts, r per pruning layer, FLOPs dense vs SAINT."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from .analysis import BlockTokens, dense_tokens, trace_tokens, vit_flops
from .models import BuiltModel
from .patch import pruning


@dataclass
class InspectReport:
    model: str
    timm_name: str
    weights: str
    batch: int
    inputs: list[str]
    protected: int
    blocks: list[BlockTokens]
    flops_dense: int
    flops_saint: int
    top1_agreement: float  # fraction of images whose SAINT top-1 equals the dense top-1
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
        lines = [f"{self.model} ({self.timm_name}, weights {self.weights}), batch {self.batch}, protected tokens {self.protected}",
                 f"{'block':>5} {'tokens in':>9} {'tokens out':>10} {'r':>4}  pruning"]
        for b in self.blocks:
            lines.append(f"{b.block:>5} {b.tokens_in:>9} {b.tokens_out:>10} {b.r:>4}  {'yes' if b.prunes else ''}")
        lines.append(f"GFLOPs/image: dense {self.flops_dense / 1e9:.2f}, SAINT {self.flops_saint / 1e9:.2f} "
                     f"(x{self.flop_ratio:.2f} fewer); top-1 same as dense on {self.top1_agreement:.0%} of inputs")
        return "\n".join(lines)


@torch.no_grad()
def inspect_model(built: BuiltModel, pixels: torch.Tensor, names: list[str]) -> InspectReport:
    model = built.model
    with pruning(model, False):
        dense_blocks, dense_logits = trace_tokens(model, pixels)
    blocks, logits = trace_tokens(model, pixels)
    n0 = dense_blocks[0].tokens_in
    agree = (logits.argmax(-1) == dense_logits.argmax(-1)).float().mean().item()
    return InspectReport(
        model=built.config.alias,
        timm_name=built.config.timm_name,
        weights=built.weights,
        batch=int(pixels.shape[0]),
        inputs=names,
        protected=built.protected,
        blocks=blocks,
        flops_dense=vit_flops(model, dense_tokens(model, n0)),
        flops_saint=vit_flops(model, blocks),
        top1_agreement=agree,
        schedule=built.schedule.to_json(),
    )
