"""``check`` and ``bench``: arguments parsed into the API's options, one API call, its report printed."""

from __future__ import annotations

import click

from .. import api
from ..runtimes import registry
from .llava import llava_options, llava_overrides
from .options import (
    Number,
    Progress,
    artifact_model_options,
    batch_option,
    device_option,
    echo_report,
    force_option,
    images_option,
    json_option,
    model_options,
    model_spec,
    out_option,
    parse_batches,
    reports_errors,
)


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
@click.option("--backend", "backends", multiple=True, type=click.Choice(registry.names()),
              help="Runtimes to compare (repeatable) [default: onnxruntime; for a .plan, tensorrt].")
@device_option
@json_option
@force_option
@reports_errors
def check_cmd(*, target, model_name, weights, checkpoint, image_dir, batch, dataset, limit, on_bad_image, tol, backends, device,
              json_path, force) -> None:
    """Compare PyTorch (dense and SAINT) and runtimes (onnxruntime, OpenVINO, TensorRT) on the same images.

    TARGET is a model name (exported to a temporary ONNX first), a portable .onnx, or a .plan
    engine (needs TensorRT). Prints every comparison, then PASS or FAIL (exit 0 or 1).
    With --dataset, also top-1 accuracy of each backend (labels = sorted subfolder names).
    """

    options = api.CheckOptions(image_dir, batch, dataset, limit, tol, backends, device, json_path, force, on_bad_image)
    echo_report(api.check(target, api.ArtifactSpec(model_name, weights, checkpoint), options, Progress()))


@click.command("bench")
@model_options
@click.option("--backend", "backends", multiple=True, type=click.Choice(["torch", *registry.short_names()]), default=("ort", "torch"),
              show_default=True, help="Backends to time (repeatable): torch, or a runtime.")
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
def bench_cmd(*, backends, batch_text, iters, warmup, min_seconds, new_tokens, image_dir, device, out, force, **opts) -> None:
    """Dense vs SAINT throughput (images/s, latency percentiles) with the FLOP ratio beside it.

    All models of one batch size run round-robin, so machine noise hits them alike; speedups
    are medians of per-round ratios with their interquartile range. For a LLaVA model: prefill
    latency, image tokens per layer and decode speed of dense and each SAINT mode (--iters
    prefill rounds, default 10), on the CPU.
    """
    model = model_spec(opts, llava_overrides(opts))
    options = api.BenchOptions(backends, tuple(parse_batches(batch_text)) if batch_text else None, iters, warmup, min_seconds,
                               new_tokens, image_dir, device, out, force)
    echo_report(api.bench(model, options, Progress()))


COMMANDS = [check_cmd, bench_cmd]
