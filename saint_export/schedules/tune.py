"""``tune``: search tau for the best fidelity at a FLOP target, measured on your images.

1. One global tau: FLOPs fall monotonically as tau falls (more edges, more votes), so a bisection
   finds the largest tau — the gentlest pruning — that still reaches the target.
2. Per-layer tau along a line, tau_l = tau_0 + slope * l (l = 0, 1, ... over the pruning layers):
   for each slope in ``SLOPES`` a bisection on tau_0 reaches the target; the best line wins. Lower
   tau early and higher tau late is what works on real DINOv2 weights (early layers hold the most
   redundancy; late drops cost more).
3. Refinement: coordinate sweeps over a grid around each layer's tau, keeping a move only if the
   target still holds and fidelity to dense improves.
Fidelity is the mean embedding cosine for backbones and -KL(dense || SAINT) for classifiers. It
is measured on the tuning images and reported on held-out images (every ``holdout_every``-th).
Everything is deterministic: no sampling, fixed order.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from ..errors import ConfigError
from ..io import write_json, write_text
from ..models.build import BuiltModel, rescheduled
from ..plots import plot_tradeoff
from ..reference.patch import pruning
from ..verify.analysis import dense_tokens, trace_tokens, vit_flops
from ..verify.compare import agreement, describe_agreement
from .calibrate import config_yaml

GRID = (-0.04, -0.02, -0.01, 0.01, 0.02, 0.04)
SLOPES = (0.004, 0.008, 0.016)


@dataclass
class Point:
    thresholds: list[float]  # one per pruning layer
    flop_ratio: float
    fidelity: dict[str, float]  # agreement() with dense
    score: float  # what the search maximises


@dataclass
class TuneReport:
    model: str
    weights: str
    target_flop_ratio: float
    layers: list[int]
    tune_images: int
    holdout_images: int
    default: Point  # the config's own schedule, on the tuning images
    global_tau: Point
    tuned: Point
    holdout: dict[str, Point]  # default / global / tuned on the held-out images
    curve: list[Point] = field(default_factory=list)  # every global-tau evaluation
    evaluations: int = 0
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def table(self) -> str:
        lines = [f"{self.model} ({self.weights}): target {self.target_flop_ratio:g}x fewer FLOPs, layers {self.layers}; "
                 f"tuned on {self.tune_images} images, reported on {self.holdout_images} held out "
                 f"({self.evaluations} evaluations, {self.seconds:.0f} s)",
                 f"{'schedule':<10} {'tau per layer':<44} {'FLOPs':>7}  held-out fidelity to dense"]
        for name, point in (("default", self.default), ("global", self.global_tau), ("tuned", self.tuned)):
            taus = ", ".join(f"{t:.3f}" for t in point.thresholds)
            held = self.holdout[name]
            lines.append(f"{name:<10} {taus:<44} {held.flop_ratio:>6.2f}x  {describe_agreement(held.fidelity)}")
        return "\n".join(lines)


class Evaluator:
    """FLOP ratio and fidelity of a threshold vector on fixed images (dense outputs computed once)."""

    def __init__(self, built: BuiltModel, pixels: torch.Tensor):
        self.built, self.pixels = built, pixels
        with torch.no_grad(), pruning(built.module, False):
            blocks, self.dense = trace_tokens(built.module, pixels)
        self.dense_flops = vit_flops(built.module, dense_tokens(built.module, blocks[0].tokens_in))
        self.count = 0

    def __call__(self, thresholds: list[float]) -> Point:
        self.count += 1
        with torch.no_grad(), rescheduled(self.built, {"threshold": [round(t, 6) for t in thresholds]}) as variant:
            blocks, out = trace_tokens(variant.module, self.pixels)
        flops = vit_flops(self.built.module, blocks)
        fidelity = agreement(out.numpy(), self.dense.numpy(), self.built.classifier)
        score = fidelity["cosine"] if "cosine" in fidelity else -fidelity["kl"]
        return Point([round(t, 6) for t in thresholds], self.dense_flops / flops, fidelity, score)


def _line(tau0: float, slope: float, layers: int) -> list[float]:
    return [min(1.0, max(-1.0, tau0 + slope * i)) for i in range(layers)]


def _bisect(evaluate: Evaluator, layers: int, target: float, steps: int, slope: float = 0.0) -> tuple[Point | None, list[Point]]:
    """The largest tau_0 whose line reaches the target (None if even tau_0 = -1 does not)."""
    lo, hi = -1.0, 1.0
    curve = [evaluate(_line(lo, slope, layers))]
    if curve[0].flop_ratio < target:
        return None, curve
    best = curve[0]
    for _ in range(steps):
        mid = (lo + hi) / 2
        point = evaluate(_line(mid, slope, layers))
        curve.append(point)
        if point.flop_ratio >= target:
            lo, best = mid, point
        else:
            hi = mid
    return best, curve


def _global(evaluate: Evaluator, layers: int, target: float, steps: int) -> tuple[Point, list[Point]]:
    best, curve = _bisect(evaluate, layers, target, steps)
    if best is None:
        raise ConfigError(f"the target {target:g}x fewer FLOPs is out of reach: even tau = -1 gives "
                          f"{curve[0].flop_ratio:.2f}x with these layers (prune more layers with --layers)")
    return best, sorted(curve, key=lambda p: p.thresholds[0])


def _best_line(evaluate: Evaluator, start: Point, target: float, steps: int) -> Point:
    best = start
    for slope in SLOPES if len(start.thresholds) > 1 else ():
        point, _ = _bisect(evaluate, len(start.thresholds), target, steps, slope)
        if point is not None and point.score > best.score:
            best = point
    return best


def _refine(evaluate: Evaluator, start: Point, target: float, sweeps: int, progress: Callable[[str], None]) -> Point:
    best = start
    for sweep in range(sweeps):
        improved = False
        for i in range(len(best.thresholds)):
            for delta in GRID:
                taus = list(best.thresholds)
                taus[i] = min(1.0, max(-1.0, taus[i] + delta))
                point = evaluate(taus)
                if point.flop_ratio >= target and point.score > best.score + 1e-9:
                    best, improved = point, True
        progress(f"sweep {sweep + 1}: score {best.score:.5f}, FLOPs x{best.flop_ratio:.2f}")
        if not improved:
            break
    return best


def tune(built: BuiltModel, pixels: torch.Tensor, target: float, *, holdout_every: int = 4, steps: int = 12,
         sweeps: int = 2, progress: Callable[[str], None] = lambda s: None) -> tuple[TuneReport, dict[str, Any]]:
    """Returns the report and the tuned schedule as config ``schedule:`` overrides."""
    import time

    if not isinstance(target, (int, float)) or not math.isfinite(target) or target <= 1.0:
        raise ConfigError(f"the FLOP target must be > 1 (x fewer FLOPs than dense); got {target}")
    if not built.schedule.rules:
        raise ConfigError(f"{built.config.alias}: the schedule has no pruning layers to tune")
    if pixels.shape[0] < 2:
        raise ConfigError("tune needs at least 2 images (some are held out)")
    start = time.perf_counter()
    held = [i for i in range(pixels.shape[0]) if i % holdout_every == holdout_every - 1] or [pixels.shape[0] - 1]
    tuning = [i for i in range(pixels.shape[0]) if i not in held]
    evaluate = Evaluator(built, pixels[tuning])
    layers = len(built.schedule.rules)
    default = evaluate([rule.threshold for _, rule in built.schedule.rules])
    progress(f"global tau by bisection on {len(tuning)} images")
    global_point, curve = _global(evaluate, layers, target, steps)
    progress("per-layer tau along lines, then coordinate refinement")
    tuned = _refine(evaluate, _best_line(evaluate, global_point, target, steps), target, sweeps, progress)
    check = Evaluator(built, pixels[held])
    holdout = {name: check(p.thresholds) for name, p in (("default", default), ("global", global_point), ("tuned", tuned))}
    report = TuneReport(built.config.alias, built.weights, target, built.schedule.layers, len(tuning), len(held), default,
                        global_point, tuned, holdout, curve, evaluate.count + check.count, time.perf_counter() - start)
    return report, {"layers": built.schedule.layers, "threshold": tuned.thresholds}


def write_tuning(paths: tuple[Path, Path, Path], built: BuiltModel, report: TuneReport, overrides: dict[str, Any],
                 force: bool = False) -> None:
    path_yaml, path_json, path_png = paths
    description = (f"{built.config.alias} with tau tuned for {report.target_flop_ratio:g}x fewer FLOPs on "
                   f"{report.tune_images} images")
    write_text(path_yaml, config_yaml(built, overrides, "tuned", "tune", description), force)
    write_json(path_json, report.to_json(), force)
    key = "cosine" if "cosine" in report.tuned.fidelity else "top1"
    marks = {f"default (tau {report.default.thresholds[0]:g})": report.default, "global tau": report.global_tau,
             "per-layer tau": report.tuned}
    plot_tradeoff(path_png, f"{report.model}: fidelity vs FLOPs (tuning images)",
                  [(p.flop_ratio, p.fidelity[key]) for p in report.curve],
                  {name: (p.flop_ratio, p.fidelity[key]) for name, p in marks.items()},
                  "mean cosine to dense" if key == "cosine" else "top-1 agreement with dense", force)
