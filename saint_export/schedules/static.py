"""Static tuning: search the per-layer token budget itself (``fixed_r`` per block, 0 = the block does
not prune) for the best fidelity to dense at a cost target, on tuning images only.

A static schedule's token counts do not depend on the data, so its cost is known without running
it: FLOPs analytically (``vit_flops``), latency from a per-block table measured on the deployment
backend (:mod:`saint_export.schedules.latency`). Only fidelity needs a forward pass. The search:

1. Greedy: from dense, repeatedly take the move (one block's ``fixed_r`` up by one step) that loses
   the least fidelity per unit of cost removed, until the target holds.
2. Exchange sweeps: move one step of budget from a block to another while the target still holds,
   keeping the move when fidelity improves.

Fidelity is the mean plus the worst per-image embedding cosine for backbones (the worst image is
what a deployment notices) and top-1 agreement minus KL for classifiers. Deterministic: no
sampling, fixed order, ties to the lower block.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from ..errors import ConfigError
from ..models.build import BuiltModel, rescheduled
from ..reference.ops import fixed_kept_count
from ..reference.patch import pruning
from ..verify.analysis import BlockTokens, dense_tokens, trace_tokens, vit_flops
from ..verify.compare import agreement

Cost = Callable[[list[BlockTokens]], float]  # per-block token counts -> cost (FLOPs, or predicted ms)


@dataclass
class StaticPoint:
    fixed_r: list[int]  # one per block; 0 = no pruning there
    tokens: list[int]  # tokens after each block
    flop_ratio: float  # dense FLOPs / these
    cost_ratio: float  # dense cost / this one (the FLOP ratio, or the predicted speedup)
    fidelity: dict[str, float]  # agreement() with dense
    score: float  # what the search maximises


def fidelity_score(fidelity: dict[str, float]) -> float:
    if "cosine" in fidelity:
        return fidelity["cosine"] + fidelity["cosine_min"]
    return fidelity["top1"] - fidelity["kl"]


def static_tokens(n0: int, protected: int, fixed_r: list[int]) -> list[BlockTokens]:
    """Token counts of every block under a static schedule (the op's own count: ``fixed_kept_count``)."""
    out, n = [], n0
    for i, r in enumerate(fixed_r):
        after = fixed_kept_count(n, protected, r) if r > 0 else n
        out.append(BlockTokens(i, n, after, r > 0))
        n = after
    return out


class StaticEvaluator:
    """Cost and fidelity of a ``fixed_r`` vector on fixed images (dense outputs computed once)."""

    def __init__(self, built: BuiltModel, pixels: torch.Tensor, cost: Cost | None = None):
        self.built, self.pixels = built, pixels
        with torch.no_grad(), pruning(built.module, False):
            blocks, self.dense = trace_tokens(built.module, pixels)
        self.n0, self.depth = blocks[0].tokens_in, len(blocks)
        self.flops = lambda traced: float(vit_flops(built.module, traced))
        self.cost = cost or self.flops
        self.dense_flops = self.flops(dense_tokens(built.module, self.n0))
        self.dense_cost = self.cost(dense_tokens(built.module, self.n0))
        self.rule = {"threshold": 0.75, "k": 5, "gamma": 10.0}
        if built.schedule.rules:
            first = built.schedule.rules[0][1]
            self.rule = {"threshold": first.threshold, "k": first.k, "gamma": first.gamma}
        self.count = 0
        self._seen: dict[tuple[int, ...], StaticPoint] = {}

    def tokens(self, fixed_r: list[int]) -> list[BlockTokens]:
        return static_tokens(self.n0, self.built.protected, fixed_r)

    def cost_ratio(self, fixed_r: list[int]) -> float:
        return self.dense_cost / self.cost(self.tokens(fixed_r))

    def overrides(self, fixed_r: list[int]) -> dict:
        rows = [{"layer": i, **self.rule, "fixed_r": r} for i, r in enumerate(fixed_r) if r > 0]
        if not rows:
            return {"layers": "none"}
        return {"layers": [row["layer"] for row in rows], **{k: [row[k] for row in rows] for k in ("threshold", "k", "gamma", "fixed_r")}}

    def __call__(self, fixed_r: list[int]) -> StaticPoint:
        key = tuple(fixed_r)
        if key not in self._seen:
            self._seen[key] = self._evaluate(list(fixed_r))
        return self._seen[key]

    def _evaluate(self, fixed_r: list[int]) -> StaticPoint:
        self.count += 1
        traced = self.tokens(fixed_r)
        if any(fixed_r):
            with torch.no_grad(), rescheduled(self.built, self.overrides(fixed_r)) as variant:
                _, out = trace_tokens(variant.module, self.pixels)
        else:
            out = self.dense
        fidelity = agreement(out.numpy(), self.dense.numpy(), self.built.classifier)
        return StaticPoint(list(fixed_r), [b.tokens_out for b in traced], self.dense_flops / self.flops(traced),
                           self.dense_cost / self.cost(traced), fidelity, fidelity_score(fidelity))


def _moves(evaluate: StaticEvaluator, fixed_r: list[int], blocks: list[int], step: int) -> list[list[int]]:
    """Each allowed block's ``fixed_r`` one step up (capped where the block has nothing more to drop)."""
    out = []
    for i in blocks:
        moved = list(fixed_r)
        moved[i] += step
        if evaluate.tokens(moved)[i].tokens_out < evaluate.tokens(fixed_r)[i].tokens_out:
            out.append(moved)
    return out


def greedy(evaluate: StaticEvaluator, blocks: list[int], target: float, step: int,
           progress: Callable[[str], None]) -> tuple[StaticPoint, list[StaticPoint]]:
    """From dense, the cheapest-fidelity moves until ``cost_ratio >= target``; the path walked."""
    current = evaluate([0] * evaluate.depth)
    path = [current]
    while current.cost_ratio < target:
        best, best_rate = None, float("inf")
        for moved in _moves(evaluate, current.fixed_r, blocks, step):
            gain = evaluate.cost_ratio(moved) - current.cost_ratio
            if gain <= 0:
                continue
            point = evaluate(moved)
            rate = (current.score - point.score) / gain
            if rate < best_rate - 1e-12:
                best, best_rate = point, rate
        if best is None:
            raise ConfigError(f"the target {target:g}x is out of reach: pruning every allowed block as far as it goes gives "
                              f"{current.cost_ratio:.2f}x (allow more blocks with --layers all)")
        current = best
        path.append(current)
        progress(f"fixed_r {current.fixed_r}: x{current.cost_ratio:.2f}, score {current.score:.4f}")
    return current, path


def exchange(evaluate: StaticEvaluator, start: StaticPoint, blocks: list[int], target: float, step: int,
             sweeps: int) -> StaticPoint:
    """Move one step of budget from a pruning block to another while the target holds; keep improvements."""
    best = start
    for _ in range(sweeps):
        improved = False
        for src in [i for i in blocks if best.fixed_r[i] > 0]:
            for dst in blocks:
                if dst == src:
                    continue
                moved = list(best.fixed_r)
                moved[src], moved[dst] = max(0, moved[src] - step), moved[dst] + step
                if evaluate.cost_ratio(moved) < target:
                    continue
                point = evaluate(moved)
                if point.score > best.score + 1e-9:
                    best, improved = point, True
        if not improved:
            break
    return best


def search_static(built: BuiltModel, pixels: torch.Tensor, target: float, *, blocks: list[int] | None = None,
                  step: int | None = None, sweeps: int = 1, cost: Cost | None = None,
                  progress: Callable[[str], None] = lambda s: None) -> tuple[StaticPoint, list[StaticPoint], StaticEvaluator]:
    """The static schedule reaching ``target`` (x less cost than dense) with the best fidelity on
    ``pixels``; ``blocks``: the blocks allowed to prune (default all); ``step``: tokens per move
    (default 1/32 of the input tokens). Returns (best, greedy path, the evaluator)."""
    evaluate = StaticEvaluator(built, pixels, cost)
    allowed = list(range(evaluate.depth)) if blocks is None else list(blocks)
    if not allowed:
        raise ConfigError(f"{built.config.alias}: no blocks allowed to prune")
    step = step or max(1, evaluate.n0 // 32)
    found, path = greedy(evaluate, allowed, target, step, progress)
    return exchange(evaluate, found, allowed, target, step, sweeps), path, evaluate
