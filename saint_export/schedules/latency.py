"""Latency on the deployment backend: a per-block table (milliseconds against token count, measured
once at the deployment batch) that predicts a static schedule's latency without running it, and
the measured speedup of a schedule against dense, interleaved as ``bench`` times.

The table times one encoder block exported alone at each token count of a grid; the rest of the
model (patch embedding, head) is the dense model's time minus its blocks. A pruning block is
predicted as the mean of the block at its input and at its output count (attention runs on the
first, the MLP on the second). Predictions are reported beside measurements, never instead of them.
"""

from __future__ import annotations

import contextlib
import io
import tempfile
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from ..bench import Exports, interleaved, paired_ratio
from ..errors import StageError
from ..models.build import BuiltModel, rescheduled
from ..reference.patch import blocks, pruning
from ..runtimes.base import Runtime
from ..verify.analysis import BlockTokens, trace_tokens

GRID = (1.0, 0.875, 0.75, 0.625, 0.5, 0.375, 0.25, 0.125)  # fractions of the input token count


@dataclass
class LatencyTable:
    backend: str
    batch: int
    tokens: list[int]  # ascending
    block_ms: list[float]  # one block at each token count
    dense_ms: float  # the whole dense model
    fixed_ms: float  # the dense model minus its blocks

    def block(self, n: int) -> float:
        return float(np.interp(n, self.tokens, self.block_ms))

    def predict(self, traced: list[BlockTokens]) -> float:
        """Predicted ms of a schedule whose blocks see ``traced``'s token counts."""
        return self.fixed_ms + sum(0.5 * (self.block(b.tokens_in) + self.block(b.tokens_out)) if b.prunes
                                   else self.block(b.tokens_in) for b in traced)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class _Block(torch.nn.Module):
    def __init__(self, block: torch.nn.Module):
        super().__init__()
        self.block = block

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        out = self.block(tokens)
        return out[0] if isinstance(out, tuple) else out


def block_onnx(built: BuiltModel, n: int, batch: int, path: Path) -> Path:
    """The model's first encoder block, dense, for ``tokens`` [batch, n, C] -> [batch, n, C], as ONNX."""
    block = blocks(built.module)[0]
    width = next(m for m in block.modules() if isinstance(m, torch.nn.Linear)).in_features
    try:
        with pruning(built.module, False), warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            program = torch.onnx.export(_Block(block), (torch.zeros(batch, n, width),), dynamo=True, input_names=["tokens"],
                                        output_names=["out"], verbose=False, report=False)
    except Exception as exc:
        raise StageError("latency", f"cannot export one block of {built.config.alias} alone: {str(exc).splitlines()[0][:200]}") from None
    program.save(str(path))
    return path


def _runner(runtime: Runtime, onnx: Path, device: str, name: str):
    return runtime.activate(runtime.runner(onnx, device, (), name), onnx)


def _timed(runners: dict[str, Any], feeds: dict[str, dict], rounds: int) -> dict[str, list[float]]:
    fns = {name: (lambda r=r, f=feeds[name]: r.infer(f)) for name, r in runners.items()}
    return interleaved(fns, warmup=2, iters=rounds, min_seconds=0.0, label="latency")


def measure_table(built: BuiltModel, runtime: Runtime, batch: int, *, device: str = "cpu", rounds: int = 10,
                  progress: Callable[[str], None] = lambda s: None) -> LatencyTable:
    """One block at each token count of ``GRID`` and the dense model, on ``runtime`` at ``batch``."""
    if runtime.suffix != ".onnx":
        raise StageError("latency", f"the per-block latency table runs ONNX runtimes; {runtime.name} runs {runtime.suffix} files")
    n0 = input_tokens(built)
    counts = sorted({max(built.protected + 2, int(round(n0 * f))) for f in GRID})
    with tempfile.TemporaryDirectory(prefix="saint-latency.") as tmp:
        progress(f"latency table on {runtime.name}, batch {batch}: one block at {counts} tokens, and dense")
        dense_path = Exports(built, Path(tmp), progress).portable("dense")
        width = next(m for m in blocks(built.module)[0].modules() if isinstance(m, torch.nn.Linear)).in_features
        runners = {f"block {n}": _runner(runtime, block_onnx(built, n, batch, Path(tmp) / f"block{n}.onnx"), device, f"block {n}")
                   for n in counts}
        runners["dense"] = _runner(runtime, dense_path, device, "dense")
        feeds = {f"block {n}": {"tokens": np.random.default_rng(0).standard_normal((batch, n, width), dtype=np.float32)}
                 for n in counts}
        feeds["dense"] = {"pixels": np.zeros((batch, 3, built.config.input_size, built.config.input_size), np.float32)}
        try:
            times = _timed(runners, feeds, rounds)
        finally:
            for runner in runners.values():
                runner.deactivate()
    block_ms = [float(np.median(times[f"block {n}"])) for n in counts]
    dense_ms = float(np.median(times["dense"]))
    fixed = max(0.0, dense_ms - len(blocks(built.module)) * block_ms[-1])
    return LatencyTable(runtime.name, batch, counts, block_ms, dense_ms, fixed)


def input_tokens(built: BuiltModel) -> int:
    """Tokens the first block sees (patches plus the protected ones)."""
    with torch.no_grad(), pruning(built.module, False):
        traced, _ = trace_tokens(built.module, torch.zeros(1, 3, built.config.input_size, built.config.input_size))
    return traced[0].tokens_in


def measured_speedup(built: BuiltModel, overrides: dict, runtime: Runtime, pixels: torch.Tensor, *, device: str = "cpu",
                     rounds: int = 10, progress: Callable[[str], None] = lambda s: None) -> tuple[float, float, float]:
    """Dense over the schedule ``overrides`` on ``runtime`` at ``pixels``' batch: the median paired
    ratio and its interquartile range, dense and tuned interleaved round by round."""
    batch = int(pixels.shape[0])
    with tempfile.TemporaryDirectory(prefix="saint-speedup.") as tmp, rescheduled(built, overrides) as tuned:
        exports = Exports(tuned, Path(tmp), progress)
        artifacts = {"dense": runtime.artifact(exports, "dense", batch), "tuned": runtime.artifact(exports, "saint", batch)}
        runners = {name: _runner(runtime, path, device, name) for name, path in artifacts.items()}
        feed = {"pixels": pixels.numpy()}
        try:
            times = _timed(runners, {"dense": feed, "tuned": feed}, rounds)
        finally:
            for runner in runners.values():
                runner.deactivate()
    return paired_ratio(times["dense"], times["tuned"])
