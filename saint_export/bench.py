"""Throughput benchmarks, dense vs SAINT, measured in one run on one machine.

Not a test: nothing here asserts a time. Every (backend, variant) of one batch size runs
round-robin, one call each per round with the order rotated every round, so background load
hits all of them alike; speedups are medians of the per-round paired ratios, with their
interquartile range as the spread. Each row also shows the FLOP ratio (the ideal speedup).
"""

from __future__ import annotations

import os
import platform
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from .export.pipeline import onnx_models_from_torch
from .inputs import gather_inputs
from .models.build import BuiltModel
from .reference.patch import pruning
from .runtimes import registry
from .runtimes.base import Runtime
from .verify.analysis import dense_tokens, trace_tokens, vit_flops

Timed = Callable[[], Any]
WORTH_IT = 1.05  # a measured speedup below this says SAINT is not worth deploying at that batch


@dataclass
class BenchRow:
    backend: str  # "torch", or a runtime's short name: "ort", "trt", ...
    variant: str  # "dense" | "saint"
    batch: int
    iters: int
    p50_ms: float
    p10_ms: float
    p90_ms: float
    images_per_s: float  # at the median latency


def machine() -> dict[str, Any]:
    info = {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "torch": torch.__version__, "torch_threads": torch.get_num_threads()}
    try:
        import onnxruntime as ort

        info["onnxruntime"] = ort.__version__
    except ImportError:
        pass
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def _time_once(fn: Timed, cuda: bool) -> float:
    if cuda:
        begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        begin.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        return begin.elapsed_time(end)
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1e3


def interleaved(fns: dict[str, Timed], warmup: int, iters: int, min_seconds: float, cuda: bool = False,
                label: str = "") -> dict[str, list[float]]:
    """Latencies in ms per name: ``warmup`` untimed calls each, then rounds of one call each (order
    rotated per round) until ``iters`` rounds and ``min_seconds`` per function have passed."""
    from tqdm import tqdm

    names = list(fns)
    for name in names:
        for _ in range(warmup):
            fns[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    start = time.perf_counter()
    with tqdm(desc=label or "bench", unit="round", leave=False) as bar:
        while len(times[names[0]]) < iters or time.perf_counter() - start < min_seconds * len(names):
            shift = len(times[names[0]]) % len(names)
            for name in names[shift:] + names[:shift]:
                times[name].append(_time_once(fns[name], cuda))
            bar.update(1)
            if len(times[names[0]]) >= 10 * iters:
                break
    return times


def row(backend: str, variant: str, batch: int, times: list[float]) -> BenchRow:
    t = np.array(times)
    p10, p50, p90 = (float(v) for v in np.percentile(t, [10, 50, 90]))
    return BenchRow(backend, variant, batch, len(times), p50, p10, p90, float(batch / (p50 / 1e3)))


def paired_ratio(slow: list[float], fast: list[float]) -> tuple[float, float, float]:
    """Median and interquartile range of slow[i] / fast[i] over rounds."""
    r = np.array(slow) / np.array(fast)
    q25, q50, q75 = np.percentile(r, [25, 50, 75])
    return float(q50), float(q25), float(q75)


def flop_ratio(built: BuiltModel, pixels: torch.Tensor) -> tuple[float, list[int]]:
    blocks, _ = trace_tokens(built.module, pixels)
    dense = vit_flops(built.module, dense_tokens(built.module, blocks[0].tokens_in))
    return dense / vit_flops(built.module, blocks), [b.tokens_out for b in blocks]


def torch_fns(built: BuiltModel, pixels: torch.Tensor) -> dict[str, Timed]:
    module = built.module

    def call(pruned: bool) -> Timed:
        @torch.no_grad()
        def fn():
            with pruning(module, pruned):
                return module(pixels)
        return fn

    return {"torch dense": call(False), "torch saint": call(True)}


def runner_fns(runners: dict[str, Any], pixels: torch.Tensor) -> dict[str, Timed]:
    """Active Polygraphy runners by label ("ort saint", "trt dense", ...), timed through ``infer``
    (for TensorRT the host-to-device copy of the batch is included)."""
    feed = {"pixels": pixels.cpu().numpy()}
    return {label: (lambda r=r: r.infer(feed)) for label, r in runners.items()}


def summarize(rows: list[BenchRow], times: dict[tuple[int, str], list[float]], ratios: dict[int, float]) -> list[dict[str, Any]]:
    """One line per (backend, batch): images/s, paired speedup with its spread, FLOP ratio, efficiency."""
    out = []
    for r in rows:
        if r.variant != "saint":
            continue
        dense = times.get((r.batch, f"{r.backend} dense"))
        if dense is None:
            continue
        d = next(x for x in rows if x.backend == r.backend and x.batch == r.batch and x.variant == "dense")
        speedup, lo, hi = paired_ratio(dense, times[(r.batch, f"{r.backend} saint")])
        out.append({"backend": r.backend, "batch": r.batch, "dense_img_s": d.images_per_s, "saint_img_s": r.images_per_s,
                    "speedup": speedup, "speedup_iqr": [lo, hi], "flop_ratio": ratios[r.batch],
                    "speedup_over_flop_ratio": speedup / ratios[r.batch]})
    return out


def report_json(model: str, rows: list[BenchRow], summary: list[dict[str, Any]], extra: dict[str, Any]) -> dict[str, Any]:
    return {"model": model, "machine": machine(), "rows": [asdict(r) for r in rows], "summary": summary, **extra}


def summary_table(summary: list[dict[str, Any]], times: dict[tuple[int, str], list[float]]) -> str:
    lines = [f"{'backend':<7} {'batch':>5} {'dense img/s':>12} {'SAINT img/s':>12} {'speedup (IQR)':>20} {'FLOP ratio':>10} {'speedup/FLOPs':>13}"]
    for s in summary:
        spread = f"{s['speedup']:.2f}x ({s['speedup_iqr'][0]:.2f}-{s['speedup_iqr'][1]:.2f})"
        lines.append(f"{s['backend']:<7} {s['batch']:>5} {s['dense_img_s']:>12.1f} {s['saint_img_s']:>12.1f} {spread:>20} "
                     f"{s['flop_ratio']:>9.2f}x {s['speedup_over_flop_ratio']:>13.2f}")
    lines += [f"warning: {s['backend']} at batch {s['batch']}: SAINT measured {s['speedup']:.2f}x dense, below {WORTH_IT}x: "
              "not worth it at this batch" for s in summary if s["speedup"] < WORTH_IT]
    for batch in sorted({b for b, _ in times}):
        torch_t, ort_t = times.get((batch, "torch saint")), times.get((batch, "ort saint"))
        if torch_t and ort_t:
            ratio, lo, hi = paired_ratio(torch_t, ort_t)
            lines.append(f"batch {batch}: SAINT on onnxruntime vs SAINT in PyTorch eager: {ratio:.2f}x ({lo:.2f}-{hi:.2f})")
    return "\n".join(lines)


def throughput_series(rows: list[BenchRow], batches: list[int]) -> dict[str, list[float]]:
    """{"ort dense": [img/s per batch], ...} for the chart."""
    return {f"{b} {v}": [next(r.images_per_s for r in rows if r.backend == b and r.variant == v and r.batch == n) for n in batches]
            for b in dict.fromkeys(r.backend for r in rows) for v in ("dense", "saint")}


class Exports:
    """The dense and SAINT ONNX models, traced into ``folder`` when a runtime first asks for them."""

    def __init__(self, built: BuiltModel, folder: Path, progress: Callable[[str], None]):
        self.built, self.folder, self.progress = built, folder, progress
        self._done: dict[tuple[str, bool], Path] = {}

    def _export(self, variant: str, lowered: bool) -> Path:
        if (variant, lowered) not in self._done:
            self.progress(f"exporting the {variant} {'TensorRT-lowered' if lowered else 'portable'} ONNX model")
            portable = self.folder / (f"{variant}.p.onnx" if lowered else f"{variant}.onnx")
            trt = self.folder / f"{variant}.trt.onnx" if lowered else None
            onnx_models_from_torch(self.built, portable, trt, pruned=variant == "saint")
            self._done[(variant, lowered)] = trt or portable
        return self._done[(variant, lowered)]

    def portable(self, variant: str) -> Path:
        return self._export(variant, False)

    def lowered(self, variant: str) -> Path:
        return self._export(variant, True)


def _prepare(built: BuiltModel, runtimes: list[Runtime], max_batch: int, device: str, tmp: Path,
             progress: Callable[[str], None]) -> dict[str, Any]:
    """Each runtime's dense and SAINT runner, active, by label ("ort dense", ...)."""
    exports, runners = Exports(built, tmp, progress), {}
    try:
        for runtime in runtimes:
            for variant in ("dense", "saint"):
                artifact = runtime.artifact(exports, variant, max_batch)
                label = f"{runtime.short} {variant}"
                runners[label] = runtime.activate(runtime.runner(artifact, device, (), label), artifact)
    except BaseException:
        for runner in runners.values():
            runner.deactivate()
        raise
    return runners


def run_bench(built: BuiltModel, backends: tuple[str, ...], batches: list[int], *, image_dir: str | None = None,
              device: str = "cpu", warmup: int = 2, iters: int = 10, min_seconds: float = 1.0,
              progress: Callable[[str], None] = lambda s: None):
    """Export/build what the backends need in a temporary folder, then time every backend's dense and
    SAINT model round-robin at each batch size. Returns (rows, per-round times, FLOP ratio per batch,
    tokens after each block per batch)."""
    runtimes = [registry.get(name, device) for name in backends if name != "torch"]
    rows: list[BenchRow] = []
    times: dict[tuple[int, str], list[float]] = {}
    ratios: dict[int, float] = {}
    tokens: dict[int, list[int]] = {}
    cuda = device == "cuda"
    with tempfile.TemporaryDirectory(prefix="saint-bench.") as tmp:
        runners = _prepare(built, runtimes, max(batches), device, Path(tmp), progress)
        inputs = {b: gather_inputs(built.config, image_dir=image_dir, batch=b)[0] for b in batches}
        for b, pixels in inputs.items():
            ratios[b], tokens[b] = flop_ratio(built, pixels)
        if cuda:
            built.module.cuda()
        try:
            for b, pixels in inputs.items():
                fns = runner_fns(runners, pixels)
                if "torch" in backends:
                    fns.update(torch_fns(built, pixels.cuda() if cuda else pixels))
                progress(f"batch {b}: {', '.join(fns)} round-robin")
                for name, latencies in interleaved(fns, warmup, iters, min_seconds, cuda, f"batch {b}").items():
                    backend, variant = name.split()
                    times[(b, name)] = latencies
                    rows.append(row(backend, variant, b, latencies))
        finally:
            built.module.cpu()
            for runner in runners.values():
                runner.deactivate()
    return rows, times, ratios, tokens
