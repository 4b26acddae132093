"""Throughput benchmarks, dense vs SAINT, measured in one run on one machine.

Not a test: nothing here asserts a time. Each row reports latency percentiles, images/s
and, beside them, the FLOP ratio of that batch (the ideal speedup).
"""

from __future__ import annotations

import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from .analysis import dense_tokens, trace_tokens, vit_flops
from .models import BuiltModel
from .patch import pruning


@dataclass
class BenchRow:
    backend: str  # "ort" | "torch"
    variant: str  # "dense" | "saint"
    batch: int
    iters: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    images_per_s: float


def machine() -> dict[str, Any]:
    info = {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpu_count": __import__("os").cpu_count(), "torch": torch.__version__, "torch_threads": torch.get_num_threads()}
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


def time_fn(fn: Callable[[], Any], warmup: int, iters: int, min_seconds: float, cuda: bool = False) -> list[float]:
    """Latencies in ms: ``warmup`` untimed calls, then at least ``iters`` calls and ``min_seconds``."""
    for _ in range(warmup):
        fn()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < iters or time.perf_counter() - start < min_seconds:
        if cuda:
            begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            begin.record()
            fn()
            end.record()
            torch.cuda.synchronize()
            times.append(begin.elapsed_time(end))
        else:
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1e3)
        if len(times) >= 10 * iters:
            break
    return times


def row(backend: str, variant: str, batch: int, times: list[float]) -> BenchRow:
    t = np.array(times)
    return BenchRow(backend, variant, batch, len(times), float(np.percentile(t, 50)), float(np.percentile(t, 90)),
                    float(np.percentile(t, 99)), float(batch / (t.mean() / 1e3)))


def flop_ratio(built: BuiltModel, pixels: torch.Tensor) -> tuple[float, list[int]]:
    blocks, _ = trace_tokens(built.model, pixels)
    dense = vit_flops(built.model, dense_tokens(built.model, blocks[0].tokens_in))
    return dense / vit_flops(built.model, blocks), [b.tokens_out for b in blocks]


@torch.no_grad()
def bench_torch(built: BuiltModel, pixels: torch.Tensor, warmup: int, iters: int, min_seconds: float) -> list[BenchRow]:
    model, cuda = built.model, pixels.is_cuda
    out = []
    for variant, pruned in (("dense", False), ("saint", True)):
        with pruning(model, pruned):
            out.append(row("torch", variant, pixels.shape[0], time_fn(lambda: model(pixels), warmup, iters, min_seconds, cuda)))
    return out


def ort_session(path: Path, device: str = "cpu"):
    import onnxruntime as ort

    from .validate import providers

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), opts, providers=providers(device))


def bench_ort(dense_session, saint_session, pixels: torch.Tensor, warmup: int, iters: int, min_seconds: float) -> list[BenchRow]:
    feed = {"pixels": pixels.cpu().numpy()}
    return [row("ort", variant, pixels.shape[0], time_fn(lambda s=s: s.run(["logits"], feed), warmup, iters, min_seconds))
            for variant, s in (("dense", dense_session), ("saint", saint_session))]


def bench_trt(dense_runner, saint_runner, pixels: torch.Tensor, warmup: int, iters: int, min_seconds: float) -> list[BenchRow]:
    """TensorRT engines through TrtRunner (host-to-device copy of the batch included)."""
    return [row("trt", variant, pixels.shape[0], time_fn(lambda r=r: r.run(pixels), warmup, iters, min_seconds, cuda=True))
            for variant, r in (("dense", dense_runner), ("saint", saint_runner))]


def summarize(rows: list[BenchRow], ratios: dict[int, float]) -> list[dict[str, Any]]:
    """One line per (backend, batch): dense and SAINT images/s, speedup, FLOP ratio, efficiency."""
    out = []
    for backend in dict.fromkeys(r.backend for r in rows):
        for batch in dict.fromkeys(r.batch for r in rows):
            d = next((r for r in rows if r.backend == backend and r.batch == batch and r.variant == "dense"), None)
            s = next((r for r in rows if r.backend == backend and r.batch == batch and r.variant == "saint"), None)
            if d and s:
                speedup = s.images_per_s / d.images_per_s
                out.append({"backend": backend, "batch": batch, "dense_img_s": d.images_per_s, "saint_img_s": s.images_per_s,
                            "speedup": speedup, "flop_ratio": ratios[batch], "speedup_over_flop_ratio": speedup / ratios[batch]})
    return out


def report_json(model: str, rows: list[BenchRow], summary: list[dict[str, Any]], extra: dict[str, Any]) -> dict[str, Any]:
    return {"model": model, "machine": machine(), "rows": [asdict(r) for r in rows], "summary": summary, **extra}


def summary_table(summary: list[dict[str, Any]], rows: list[BenchRow]) -> str:
    lines = [f"{'backend':<7} {'batch':>5} {'dense img/s':>12} {'SAINT img/s':>12} {'speedup':>8} {'FLOP ratio':>10} {'speedup/FLOPs':>13}"]
    for s in summary:
        lines.append(f"{s['backend']:<7} {s['batch']:>5} {s['dense_img_s']:>12.1f} {s['saint_img_s']:>12.1f} "
                     f"{s['speedup']:>7.2f}x {s['flop_ratio']:>9.2f}x {s['speedup_over_flop_ratio']:>13.2f}")
    by = {(r.backend, r.variant, r.batch): r for r in rows}
    for batch in sorted({r.batch for r in rows}):
        o, t = by.get(("ort", "saint", batch)), by.get(("torch", "saint", batch))
        if o and t:
            lines.append(f"batch {batch}: SAINT on onnxruntime vs SAINT in PyTorch eager: {o.images_per_s / t.images_per_s:.2f}x")
    return "\n".join(lines)


def throughput_series(rows: list[BenchRow], batches: list[int]) -> dict[str, list[float]]:
    """{"ort dense": [img/s per batch], ...} for the chart."""
    return {f"{b} {v}": [next(r.images_per_s for r in rows if r.backend == b and r.variant == v and r.batch == n) for n in batches]
            for b in dict.fromkeys(r.backend for r in rows) for v in ("dense", "saint")}


def run_bench(built: BuiltModel, backends: tuple[str, ...], batches: list[int], image_dir: str | None, device: str,
              warmup: int, iters: int, min_seconds: float,
              progress: Callable[[str], None] = lambda s: None) -> tuple[list[BenchRow], dict[int, float], dict[int, list[int]]]:
    """Export/build what the backends need in a temporary folder, then time dense and SAINT at each
    batch size. Returns (rows, FLOP ratio per batch, tokens after each block per batch)."""
    import tempfile

    from .export.pipeline import onnx_models_from_torch
    from .images import gather_inputs

    rows: list[BenchRow] = []
    ratios: dict[int, float] = {}
    tokens: dict[int, list[int]] = {}
    with tempfile.TemporaryDirectory(prefix="saint-bench.") as tmp:
        sessions = runners = None
        if "trt" in backends:
            from .engine import EngineOptions, TrtRunner, engine_from_onnx

            progress("exporting and building dense and SAINT TensorRT engines")
            options = EngineOptions(batch=(1, max(batches), max(batches)))
            plans = []
            for variant, pruned in (("dense", False), ("saint", True)):
                portable, lowered = Path(tmp) / f"{variant}.p.onnx", Path(tmp) / f"{variant}.trt.onnx"
                onnx_models_from_torch(built, portable, lowered, pruned=pruned)
                plans.append(engine_from_onnx(lowered, Path(tmp) / f"{variant}.plan", options))
            runners = tuple(TrtRunner(p) for p in plans)
        if "ort" in backends:
            progress("exporting dense and SAINT ONNX models")
            onnx_models_from_torch(built, Path(tmp) / "dense.onnx", None, pruned=False)
            onnx_models_from_torch(built, Path(tmp) / "saint.onnx", None, pruned=True)
            sessions = (ort_session(Path(tmp) / "dense.onnx", device), ort_session(Path(tmp) / "saint.onnx", device))
        for b in batches:
            pixels, _ = gather_inputs(built.config, image_dir=image_dir, batch=b)
            ratios[b], tokens[b] = flop_ratio(built, pixels)
            if sessions:
                progress(f"onnxruntime, batch {b}")
                rows += bench_ort(*sessions, pixels, warmup, iters, min_seconds)
            if runners:
                progress(f"TensorRT, batch {b}")
                rows += bench_trt(*runners, pixels, warmup, iters, min_seconds)
            if "torch" in backends:
                progress(f"PyTorch eager, batch {b}")
                if device == "cuda":
                    built.model.cuda()
                rows += bench_torch(built, pixels.cuda() if device == "cuda" else pixels, warmup, iters, min_seconds)
                built.model.cpu()
    return rows, ratios, tokens
