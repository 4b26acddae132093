"""``check`` and ``bench``."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..errors import ConfigError
from .llava import llava_options
from .options import (Number, Progress, artifact_model_options, batch_option, build_from_options, device_option, force_option,
                      images_option, json_option, model_options, out_option, parse_batches, reports_errors)


@click.command("check")
@click.argument("target")
@artifact_model_options
@images_option
@batch_option
@click.option("--dataset", type=click.Path(file_okay=False), default=None, help="ImageFolder-style folder: accuracy per backend.")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Use at most this many dataset images.")
@click.option("--on-bad-image", type=click.Choice(["skip", "fail"]), default="skip", show_default=True,
              help="--dataset: an unreadable image is skipped (counted and listed in the report) or stops the run (exit 4).")
@click.option("--tol", "tol", multiple=True, metavar="logits=ATOL[:RTOL]", help="logits tolerance (default 1e-4:1e-4).")
@device_option
@json_option
@force_option
@reports_errors
def check_cmd(target, model_name, weights, checkpoint, image_dir, batch, dataset, limit, on_bad_image, tol, device, json_path,
              force) -> None:
    """Compare PyTorch (dense and SAINT), onnxruntime and TensorRT on the same images.

    TARGET is a model name (exported to a temporary ONNX first), a portable .onnx, or a .plan
    engine (needs TensorRT). Prints every comparison, then PASS or FAIL (exit 0 or 1).
    With --dataset, also top-1 accuracy of each backend (labels = sorted subfolder names).
    """
    from ..io import check_writable, write_json
    from ..verify.check import as_json, comparison_table, run_check
    from ..verify.compare import check_tolerance_names, parse_tolerances

    if json_path:
        check_writable(json_path, force)
    tolerances = parse_tolerances(tol)
    check_tolerance_names(tolerances, ["logits"])  # check compares the logits of every backend
    tolerance = tolerances.get("logits", (1e-4, 1e-4))
    result, report = run_check(target, model_name, checkpoint, weights, image_dir, batch, dataset, limit, tolerance, device,
                               Progress(), on_bad_image)
    click.echo(comparison_table(result))
    if report:
        click.echo(report.table())
    click.echo("PASS" if result["passed"] else "FAIL: outputs outside tolerance (see the table)")
    if json_path:
        write_json(json_path, as_json(result, report), force)
        click.echo(f"report: {json_path}")
    sys.exit(0 if result["passed"] else 1)


@click.command("bench")
@model_options
@click.option("--backend", "backends", multiple=True, type=click.Choice(["ort", "torch", "trt"]), default=("ort", "torch"),
              show_default=True, help="Backends to time (repeatable).")
@click.option("--batch", "batch_text", default=None, help="Comma-separated batch sizes [default: 1,8,32; LLaVA: 2].")
@click.option("--iters", type=click.IntRange(min=1), default=10, show_default=True, help="Timed rounds per batch size (at least).")
@click.option("--warmup", type=click.IntRange(min=0), default=2, show_default=True)
@click.option("--min-seconds", type=Number(0.0, 86400.0), default=1.0, show_default=True, help="Minimum timed seconds per model and batch size.")
@click.option("--new-tokens", type=click.IntRange(min=2), default=16, show_default=True, help="LLaVA: tokens generated per round.")
@llava_options
@images_option
@device_option
@out_option
@force_option
@reports_errors
def bench_cmd(backends, batch_text, iters, warmup, min_seconds, new_tokens, image_dir, device, out, force, **opts) -> None:
    """Dense vs SAINT throughput (images/s, latency percentiles) with the FLOP ratio beside it.

    All models of one batch size run round-robin, so machine noise hits them alike; speedups
    are medians of per-round ratios with their interquartile range. For a LLaVA model: prefill
    latency, image tokens per layer and decode speed of dense and each SAINT mode (--iters
    prefill rounds, default 10), on the CPU.
    """
    from ..models.registry import resolve

    if resolve(opts["model_name"]).is_llava:
        from .llava import bench_llava_cmd

        if device != "cpu" or tuple(backends) != ("ort", "torch"):
            raise ConfigError("a LLaVA bench times PyTorch on the CPU; --device and --backend are for vision transformers")
        return bench_llava_cmd(opts, batch_text, iters, image_dir, out, force, new_tokens)
    from .llava import refuse_llava_options

    refuse_llava_options(opts)
    from .. import bench
    from ..export.pipeline import output_folder
    from ..io import check_writable, write_json
    from ..plots import plot_throughput

    batches = parse_batches(batch_text or "1,8,32")
    if "trt" in backends:
        from ..tensorrt.engine import require_tensorrt

        require_tensorrt(onnx_written=False)
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            from ..errors import MissingDependencyError

            raise MissingDependencyError("--device cuda: no CUDA GPU is visible to PyTorch")
    out_dir = output_folder(opts["model_name"], out)
    json_path, png_path = check_writable(out_dir / "bench.json", force), check_writable(out_dir / "bench.png", force)
    built = build_from_options(opts)
    rows, times, ratios, tokens = bench.run_bench(built, backends, batches, image_dir, device, warmup, iters, min_seconds, Progress())
    summary = bench.summarize(rows, times, ratios)
    click.echo(bench.summary_table(summary, times))
    write_json(json_path, bench.report_json(built.config.alias, rows, summary, {"tokens_after_each_block": tokens,
                                                                                  "schedule": built.schedule.to_json()}), force)
    plot_throughput(png_path, f"{built.config.alias}: dense vs SAINT", batches, bench.throughput_series(rows, batches), force)
    click.echo(f"report: {json_path}\nplot: {png_path}")


COMMANDS = [check_cmd, bench_cmd]
