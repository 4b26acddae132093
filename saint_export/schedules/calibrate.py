"""``calibrate``: freeze a dynamic SAINT schedule into static per-layer counts (``fixed_r``).

Dynamic SAINT decides r per batch from a vote, so token dims depend on the data: a device-to-host
sync per pruning layer on GPUs, no CUDA graphs, and answers that depend on batch mates. Running it
over calibration images at the deployment batch size and freezing a statistic of the observed r
per layer gives a schedule with static shapes that every command accepts (a YAML config).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from ..errors import ConfigError
from ..io import write_json, write_text
from ..models.build import BuiltModel, rescheduled
from ..models.record import ModelRecord, config_json
from ..plots import plot_tokens
from ..reference.ops import recording
from ..reference.patch import pruning
from ..verify.analysis import dense_tokens, trace_tokens, vit_flops
from ..verify.compare import agreement, describe_agreement


@dataclass
class Variant:
    """One way of running the model over the calibration images."""

    tokens: list[int]  # tokens after each block, mean over batches (rounded)
    flop_ratio: float  # dense FLOPs / this variant's FLOPs
    fidelity: dict[str, float]  # agreement() with dense over all images


@dataclass
class CalibrationReport:
    model: str
    weights: str
    batch: int
    batches: int
    images: int
    percentile: float
    r_observed: dict[int, list[int]]  # pruning layer -> r of each calibration batch
    fixed_r: dict[int, int]
    variants: dict[str, Variant] = field(default_factory=dict)  # dense, dynamic, static

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def table(self) -> str:
        lines = [f"{self.model} ({self.weights}): {self.images} images in {self.batches} batch(es) of {self.batch}, "
                 f"fixed_r = percentile {self.percentile:g} of the observed r",
                 f"{'layer':>5} {'r observed (min/median/max)':>28} {'fixed_r':>8}"]
        for layer, rs in self.r_observed.items():
            lines.append(f"{layer:>5} {f'{min(rs)}/{int(np.median(rs))}/{max(rs)}':>28} {self.fixed_r[layer]:>8}")
        for name, v in self.variants.items():
            lines.append(f"{name:<8} FLOPs x{v.flop_ratio:.2f} fewer; tokens {v.tokens}; vs dense: {describe_agreement(v.fidelity)}")
        return "\n".join(lines)


def _batches(pixels: torch.Tensor, batch: int) -> list[torch.Tensor]:
    """Consecutive batches of ``batch`` images; the last one is filled up by cycling from the start."""
    count = max(1, math.ceil(pixels.shape[0] / batch))
    index = [i % pixels.shape[0] for i in range(count * batch)]
    return [pixels[index[i * batch:(i + 1) * batch]] for i in range(count)]


@torch.no_grad()
def _run(built: BuiltModel, batches: list[torch.Tensor]) -> tuple[list[list], torch.Tensor, list[list[int]]]:
    """Per batch: the block trace and the output; and each sample's r per pruning layer (a sample's
    own vote under vote: sample; the batch's r, once per sample, under the batch vote)."""
    traces, outputs, sample_r = [], [], []
    for pixels in batches:
        with recording() as drops:
            blocks, out = trace_tokens(built.module, pixels)
        traces.append(blocks)
        outputs.append(out)
        real = torch.full((pixels.shape[0],), blocks[0].tokens_in)
        for _, kept in drops:
            after = (kept >= 0).sum(1)
            sample_r.append((real - after).tolist())
            real = after
    layers = max(1, len(built.schedule.layers))
    return traces, torch.cat(outputs), [sum(sample_r[i::layers], []) for i in range(layers)]


def _variant(built: BuiltModel, traces: list[list], out: torch.Tensor, dense_out: torch.Tensor) -> Variant:
    module = built.module
    n0 = traces[0][0].tokens_in
    dense_flops = vit_flops(module, dense_tokens(module, n0))
    flops = float(np.mean([vit_flops(module, blocks) for blocks in traces]))
    tokens = [int(round(np.mean([blocks[i].tokens_out for blocks in traces]))) for i in range(len(traces[0]))]
    return Variant(tokens, dense_flops / flops, agreement(out.numpy(), dense_out.numpy(), built.classifier))


def calibrate(built: BuiltModel, pixels: torch.Tensor, batch: int, percentile: float = 50.0,
              progress: Callable[[str], None] = lambda s: None) -> tuple[CalibrationReport, dict[str, Any]]:
    """Run dense and dynamic SAINT on ``pixels`` [N, 3, S, S] in batches of ``batch``; freeze
    fixed_r[layer] = floor(percentile of the observed r); run the static schedule too.
    Returns the report and the static schedule as config ``schedule:`` overrides.
    ``built.module`` is left patched with its original schedule."""
    if not 0 <= percentile <= 100:
        raise ConfigError(f"--percentile must be in [0, 100]; got {percentile}")
    if not built.schedule.rules:
        raise ConfigError(f"{built.config.alias}: the schedule has no pruning layers to calibrate")
    batches = _batches(pixels, batch)
    progress(f"dense and dynamic SAINT over {len(batches)} batch(es) of {batch}")
    with pruning(built.module, False):
        dense_traces, dense_out, _ = _run(built, batches)
    dyn_traces, dyn_out, sample_r = _run(built, batches)
    layers = built.schedule.layers
    if built.schedule.per_sample:  # every sample's own r
        observed = dict(zip(layers, sample_r))
    else:
        observed = {layer: [blocks[layer].r for blocks in dyn_traces] for layer in layers}
    fixed = {layer: int(math.floor(np.percentile(rs, percentile))) for layer, rs in observed.items()}
    # fixed counts are batch-invariant already, and the batch-vote op gives them static token dims
    rows = [{**{k: v for k, v in row.items() if k != "vote"}, "fixed_r": fixed[row["layer"]]} for row in built.schedule.to_json()]
    overrides = ModelRecord(config_json(built.config), built.weights, rows).schedule_overrides()
    progress("static SAINT with the calibrated fixed_r")
    with rescheduled(built, overrides) as static_built:
        static_traces, static_out, _ = _run(static_built, batches)
    report = CalibrationReport(built.config.alias, built.weights, batch, len(batches), int(pixels.shape[0]), percentile,
                               observed, fixed, {"dense": _variant(built, dense_traces, dense_out, dense_out),
                                                 "dynamic": _variant(built, dyn_traces, dyn_out, dense_out),
                                                 "static": _variant(built, static_traces, static_out, dense_out)})
    return report, overrides


def config_yaml(built: BuiltModel, overrides: dict[str, Any], suffix: str, command: str, description: str) -> str:
    """A standalone config (usable as MODEL by every command) with another schedule."""
    import yaml

    data = config_json(built.config)
    data["alias"] = f"{built.config.alias.replace('.', '_')}_{suffix}"
    data["description"] = description
    data["schedule"] = overrides
    header = (f"# written by saint-export {command} from {built.config.alias} ({built.weights}); use it as MODEL in any\n"
              "# command, with the same --checkpoint/--weights\n")
    return header + yaml.safe_dump(data, sort_keys=False, default_flow_style=None)


def write_calibration(paths: tuple[Path, Path, Path], built: BuiltModel, report: CalibrationReport,
                      overrides: dict[str, Any], force: bool = False) -> None:
    path_yaml, path_json, path_png = paths
    description = (f"{built.config.alias} with fixed_r calibrated at batch {report.batch} on {report.images} images "
                   f"(percentile {report.percentile:g}); static token dims")
    write_text(path_yaml, config_yaml(built, overrides, "calibrated", "calibrate", description), force)
    write_json(path_json, report.to_json(), force)
    plot_tokens(path_png, f"{report.model}: calibrated at batch {report.batch}",
                {name: v.tokens for name, v in report.variants.items()}, force)
