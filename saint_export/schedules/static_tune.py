"""``tune`` (static, the default): the per-block ``fixed_r`` searched on the tuning images for a FLOP
target or a speed target measured on the deployment backend, and reported on held-out images that
the search never sees, beside the config's own dynamic schedule on the same held-out images."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from ..bench import WORTH_IT
from ..errors import ConfigError
from ..io import write_json, write_text
from ..models.build import BuiltModel
from ..plots import plot_tradeoff
from ..reference.patch import pruning
from ..runtimes.base import Runtime
from ..verify.analysis import dense_tokens, trace_tokens, vit_flops
from ..verify.compare import agreement, describe_agreement
from .calibrate import config_yaml
from .latency import LatencyTable, measure_table, measured_speedup
from .static import StaticEvaluator, StaticPoint, search_static


@dataclass
class SpeedTarget:
    runtime: Runtime
    batch: int
    device: str = "cpu"
    rounds: int = 10


@dataclass
class FidelityTarget:
    mean: float | None = None  # held-out mean cosine (backbones) or top-1 agreement (classifiers)
    worst: float | None = None  # held-out worst-image cosine (backbones)

    def misses(self, fidelity: dict[str, float]) -> list[str]:
        key = "cosine" if "cosine" in fidelity else "top1"
        out = []
        if self.mean is not None and fidelity[key] < self.mean:
            out.append(f"mean {key} {fidelity[key]:.4f} < {self.mean:g}")
        if self.worst is not None and "cosine_min" in fidelity and fidelity["cosine_min"] < self.worst:
            out.append(f"worst cosine {fidelity['cosine_min']:.4f} < {self.worst:g}")
        return out


@dataclass
class StaticTuneReport:
    model: str
    weights: str
    target: str  # "2x fewer FLOPs" or "1.5x faster on onnxruntime at batch 8"
    blocks: list[int]  # blocks allowed to prune
    tune_images: int
    holdout_images: int
    tuned: StaticPoint  # on the tuning images
    holdout: dict[str, dict[str, Any]]  # "tuned" / "dynamic (config)": flop_ratio and fidelity on the held-out images
    path: list[StaticPoint] = field(default_factory=list)  # the greedy walk from dense
    latency: LatencyTable | None = None
    predicted_speedup: float | None = None
    measured_speedup: list[float] | None = None  # median, q25, q75
    warnings: list[str] = field(default_factory=list)
    evaluations: int = 0
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "latency": self.latency.to_json() if self.latency else None}

    def table(self) -> str:
        lines = [f"{self.model} ({self.weights}): static schedule for {self.target}, blocks {self.blocks}; searched on "
                 f"{self.tune_images} images, reported on {self.holdout_images} held out ({self.evaluations} evaluations, "
                 f"{self.seconds:.0f} s)",
                 f"fixed_r per block: {self.tuned.fixed_r}",
                 f"tokens after each block: {self.tuned.tokens}",
                 f"{'schedule':<18} {'FLOPs':>7}  held-out fidelity to dense"]
        for name, held in self.holdout.items():
            lines.append(f"{name:<18} {held['flop_ratio']:>6.2f}x  {describe_agreement(held['fidelity'])}")
        if self.predicted_speedup is not None:
            measured = (f"{self.measured_speedup[0]:.2f}x (IQR {self.measured_speedup[1]:.2f}-{self.measured_speedup[2]:.2f})"
                        if self.measured_speedup else "not measured")
            lines.append(f"speedup on {self.latency.backend} at batch {self.latency.batch}: predicted {self.predicted_speedup:.2f}x, "
                         f"measured {measured}")
        lines += [f"warning: {w}" for w in self.warnings]
        return "\n".join(lines)


def split(count: int, holdout_every: int) -> tuple[list[int], list[int]]:
    """(tuning, held-out) image indices: every ``holdout_every``-th image is held out."""
    held = [i for i in range(count) if i % holdout_every == holdout_every - 1] or [count - 1]
    return [i for i in range(count) if i not in held], held


def _held_out(built: BuiltModel, pixels: torch.Tensor, fixed_r: list[int]) -> dict[str, dict[str, Any]]:
    """The tuned static schedule and the config's own (dynamic) schedule on the held-out images."""
    check = StaticEvaluator(built, pixels)
    tuned = check(fixed_r)
    with torch.no_grad():
        blocks, out = trace_tokens(built.module, pixels)
        dense_flops = vit_flops(built.module, dense_tokens(built.module, blocks[0].tokens_in))
        with pruning(built.module, False):
            dense = built.module(pixels)
    dynamic = {"flop_ratio": dense_flops / vit_flops(built.module, blocks),
               "fidelity": agreement(out.numpy(), dense.numpy(), built.classifier)}
    return {"tuned (static)": {"flop_ratio": tuned.flop_ratio, "fidelity": tuned.fidelity}, "config (dynamic)": dynamic}


def tune_static(built: BuiltModel, tuning: torch.Tensor, held: torch.Tensor, target: float, *, blocks: list[int] | None = None,
                speed: SpeedTarget | None = None, fidelity: FidelityTarget = FidelityTarget(),
                progress: Callable[[str], None] = lambda s: None) -> tuple[StaticTuneReport, dict[str, Any]]:
    """Search on ``tuning`` for ``target`` (x fewer FLOPs, or with ``speed`` x faster on its runtime),
    report on ``held``. Returns the report and the static schedule as config ``schedule:`` overrides."""
    if not target > 1.0:
        raise ConfigError(f"the target must be a number > 1 (x fewer FLOPs, or x faster, than dense); got {target:g}")
    start = time.perf_counter()
    table = measure_table(built, speed.runtime, speed.batch, device=speed.device, rounds=speed.rounds, progress=progress) if speed else None
    progress(f"static search on {tuning.shape[0]} images for {target:g}x")
    tuned, path, evaluate = search_static(built, tuning, target, blocks=blocks, cost=table.predict if table else None,
                                          progress=progress)
    overrides = evaluate.overrides(tuned.fixed_r)
    holdout = _held_out(built, held, tuned.fixed_r)
    what = (f"{target:g}x faster on {speed.runtime.name} at batch {speed.batch}" if speed else f"{target:g}x fewer FLOPs")
    report = StaticTuneReport(built.config.alias, built.weights, what, blocks if blocks is not None else list(range(evaluate.depth)),
                              int(tuning.shape[0]), int(held.shape[0]), tuned, holdout, path, table,
                              tuned.cost_ratio if speed else None, evaluations=evaluate.count)
    if speed:
        progress(f"measuring dense vs tuned on {speed.runtime.name} at batch {speed.batch}")
        batch = held[[i % held.shape[0] for i in range(speed.batch)]]
        report.measured_speedup = list(measured_speedup(built, overrides, speed.runtime, batch, device=speed.device,
                                                        rounds=speed.rounds, progress=progress))
        report.warnings += speed_warnings(report.measured_speedup[0], target, speed)
    missed = fidelity.misses(holdout["tuned (static)"]["fidelity"])
    if missed:
        report.warnings.append(f"the fidelity target is not met at {what}: {'; '.join(missed)} on the held-out images; "
                               f"this is the best trade-off the search found")
    report.seconds = time.perf_counter() - start
    return report, overrides


def speed_warnings(measured: float, target: float, speed: SpeedTarget) -> list[str]:
    out = []
    if measured < WORTH_IT:
        out.append(f"measured speedup {measured:.2f}x at batch {speed.batch} on {speed.runtime.name}: SAINT is not worth it there")
    elif measured < target:
        out.append(f"measured speedup {measured:.2f}x is below the target {target:g}x (the table predicted it); "
                   "aim higher or measure at another batch")
    return out


def write_static_tuning(paths: tuple[Path, Path, Path], built: BuiltModel, report: StaticTuneReport, overrides: dict[str, Any],
                        force: bool = False) -> None:
    path_yaml, path_json, path_png = paths
    description = (f"{built.config.alias}, static fixed_r tuned for {report.target} on {report.tune_images} images; "
                   "static token dims")
    write_text(path_yaml, config_yaml(built, overrides, "tuned", "tune", description), force)
    write_json(path_json, report.to_json(), force)
    key = "cosine" if "cosine" in report.tuned.fidelity else "top1"
    plot_tradeoff(path_png, f"{report.model}: fidelity vs cost, static search (tuning images)",
                  [(p.cost_ratio, p.fidelity[key]) for p in report.path], {"tuned": (report.tuned.cost_ratio, report.tuned.fidelity[key])},
                  "mean cosine to dense" if key == "cosine" else "top-1 agreement with dense", force,
                  xlabel="predicted x faster than dense" if report.latency else "x fewer FLOPs than dense",
                  curve_label="the greedy walk from dense")
