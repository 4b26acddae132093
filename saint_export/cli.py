"""The ``saint-export`` command line (click)."""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path
from typing import Any, Callable

import click

from .errors import EXIT_CODES, ConfigError, InputError, SaintExportError

EXIT_CODE_HELP = "\b\nExit codes:\n" + "\n".join(f"  {code}  {what}" for code, what in EXIT_CODES.items()) + "\n  8  internal error (a bug; SAINT_EXPORT_DEBUG=1 shows the traceback)"
INTERNAL_ERROR = 8


def reports_errors(fn: Callable) -> Callable:
    """Turn toolkit errors into one line on stderr and the documented exit code."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except SaintExportError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)
        except Exception as exc:  # a bug: still one line unless asked for more
            if os.environ.get("SAINT_EXPORT_DEBUG"):
                raise
            click.echo(f"internal error: {type(exc).__name__}: {exc} (SAINT_EXPORT_DEBUG=1 shows the traceback)", err=True)
            sys.exit(INTERNAL_ERROR)

    return wrapper


class ModelFirstGroup(click.Group):
    """``saint-export MODEL ...`` runs the hidden ``run`` command; known names are subcommands."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and not args[0].startswith("-") and args[0] not in self.commands:
            args = ["run", *args]
        return super().parse_args(ctx, args)


def model_options(fn: Callable) -> Callable:
    """Model selection, weights and schedule overrides shared by every command that builds a model."""
    options = [
        click.argument("model"),
        click.option("--weights", type=click.Choice(["random", "pretrained"]), default="random", show_default=True,
                     help="random: seeded init, no network. pretrained: timm's hub (needs a network)."),
        click.option("--checkpoint", type=click.Path(dir_okay=False), default=None,
                     help=".safetensors or .pth state dict for the model's timm architecture (overrides --weights)."),
        click.option("--seed", type=int, default=0, show_default=True, help="Seed for random weights."),
        click.option("--layers", default=None, help="Pruning blocks: first_half, all, none, '0-5' or '0,2,4'."),
        click.option("--threshold", type=float, default=None, help="tau for every pruning block, in [-1, 1]."),
        click.option("--k", "k", type=int, default=None, help="K, edges a row needs to vote (>= 1)."),
        click.option("--gamma", type=float, default=None, help="gamma of the score."),
        click.option("--fixed-r", type=int, default=None, help="Drop exactly this many a-tokens per pruning block (-1 = vote)."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def build_from_options(opts: dict[str, Any]):
    from .models import build_model
    from .registry import resolve

    cfg = resolve(opts["model"])
    overrides = {"layers": opts.get("layers"), "threshold": opts.get("threshold"), "k": opts.get("k"),
                 "gamma": opts.get("gamma"), "fixed_r": opts.get("fixed_r")}
    return build_model(cfg, weights=opts["weights"], checkpoint=opts.get("checkpoint"), overrides=overrides, seed=opts["seed"])


@click.group(cls=ModelFirstGroup, epilog=EXIT_CODE_HELP, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="saint-export")
def main() -> None:
    """Export SAINT-pruned Vision Transformers to ONNX and TensorRT, and prove they still
    answer like PyTorch.

    \b
    saint-export MODEL [OPTIONS]      export + validate (see 'saint-export run --help')
    saint-export list [PATTERN]       model aliases (wildcards: 'vit_*')
    saint-export inspect MODEL        tokens per layer, r, FLOPs dense vs SAINT

    MODEL is an alias from 'saint-export list' (variants as alias.variant), a config
    .yaml path, or any timm ViT name.
    """


@main.command("list")
@click.argument("pattern", default="*")
@reports_errors
def list_cmd(pattern: str) -> None:
    """List model aliases and variants matching PATTERN (shell wildcards)."""
    from .registry import list_models

    found = list_models(pattern)
    if not found:
        click.echo(f"no model matches {pattern!r}", err=True)
        sys.exit(3)
    width = max(len(c.alias) for c in found)
    for cfg in found:
        click.echo(f"{cfg.alias:<{width}}  {cfg.timm_name:<48} {cfg.description}")


@main.command("inspect")
@model_options
@click.option("--image", "images", multiple=True, type=click.Path(dir_okay=False), help="An image file (repeatable).")
@click.option("--images", "image_dir", type=click.Path(file_okay=False), default=None, help="A folder of images.")
@click.option("--synthetic", is_flag=True, help="Use 8 generated images with flat regions and repeated tiles.")
@click.option("--photos", is_flag=True, help="Use the photos scikit-image ships.")
@click.option("--plot", type=click.Path(dir_okay=False), default=None, help="PNG of tokens per block [default: MODEL_tokens.png].")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None, help="Write the report as JSON.")
@click.option("--force", is_flag=True, help="Replace existing output files.")
@reports_errors
def inspect_cmd(images, image_dir, synthetic, photos, plot, json_path, force, **opts) -> None:
    """Tokens per layer, r per pruning layer and FLOPs, dense vs SAINT, on one batch.

    With no input option, the scikit-image photos plus generated images are used.
    All inputs run as one batch (SAINT's r is the batch mean of the per-image votes).
    """
    from .images import gather_inputs
    from .inspect_model import inspect_model
    from .io import check_writable, write_json
    from .plots import plot_tokens

    plot = plot or f"{resolve_alias(opts['model'])}_tokens.png"
    check_writable(plot, force)
    if json_path:
        check_writable(json_path, force)
    built = build_from_options(opts)
    pixels, names = gather_inputs(built.config, images, image_dir, 8 if synthetic else 0, photos)
    report = inspect_model(built, pixels, names)
    click.echo(report.table())
    dense = [b.tokens_in for b in report.blocks[:1]] * len(report.blocks)
    plot_tokens(plot, f"{report.model}: tokens per block (batch {report.batch})", dense, [b.tokens_out for b in report.blocks], force)
    click.echo(f"plot: {plot}")
    if json_path:
        write_json(json_path, report.to_json(), force)
        click.echo(f"report: {json_path}")


class Progress:
    """Timestamped progress lines on stderr for the long stages."""

    def __init__(self, quiet: bool = False):
        import time

        self._t0 = time.perf_counter()
        self._time = time.perf_counter
        self.quiet = quiet

    def __call__(self, message: str) -> None:
        if not self.quiet:
            click.echo(f"[{self._time() - self._t0:7.1f}s] {message}", err=True)


def input_options(fn: Callable) -> Callable:
    options = [
        click.option("--images", "image_dir", type=click.Path(file_okay=False), default=None,
                     help="Folder of your images (default: scikit-image photos + generated images with redundancy)."),
        click.option("--batch", type=int, default=8, show_default=True, help="Validation batch size."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def tolerance_option(fn: Callable) -> Callable:
    return click.option("--tol", "tol", multiple=True, metavar="NAME=ATOL[:RTOL]",
                        help="Per-output tolerance, e.g. logits=1e-3:1e-3 (default logits=1e-4:1e-4; kept_index exact).")(fn)


def _validate_and_report(onnx_path, built, image_dir, batch, tol, device, json_path, force, progress) -> bool:
    from .images import gather_inputs
    from .io import write_json
    from .validate import parse_tolerances, validate_onnx

    if batch < 1:
        raise ConfigError(f"--batch must be >= 1; got {batch}")
    pixels, names = gather_inputs(built.config, image_dir=image_dir, batch=batch)
    progress(f"validating {onnx_path} against PyTorch on {len(names)} images")
    report = validate_onnx(onnx_path, built, pixels, names, parse_tolerances(tol), device)
    click.echo(report.table())
    if json_path:
        write_json(json_path, report.to_json(), force)
        click.echo(f"report: {json_path}")
    return report.passed


def _export(opts, out, onnx_path, trt_onnx, opset, fp16, force, progress):
    from .export.pipeline import onnx_models_from_torch

    built = build_from_options(opts)
    alias = output_stem(built.config.alias)
    out = Path(out or Path("out") / alias)
    portable = Path(onnx_path) if onnx_path else out / f"{alias}.onnx"
    tensorrt = Path(trt_onnx) if trt_onnx else portable.with_name(portable.name.removesuffix(".onnx") + ".trt.onnx")
    result = onnx_models_from_torch(built, portable, tensorrt, opset=opset, fp16=fp16, force=force, progress=progress)
    click.echo(f"portable ONNX (onnxruntime, any runtime): {result.portable}")
    click.echo(f"TensorRT-lowered ONNX (needs libsaint_plugins.so): {result.tensorrt}")
    click.echo(f"{result.drop_nodes} SaintTokenDrop node(s); schedule: " + ", ".join(
        f"block {i} tau={r.threshold:g} K={r.k}" + (f" fixed_r={r.fixed_r}" if r.fixed_r >= 0 else "") for i, r in built.schedule.rules))
    return built, result, out


def export_options(fn: Callable) -> Callable:
    options = [
        click.option("--out", type=click.Path(file_okay=False), default=None, help="Output folder [default: out/MODEL]."),
        click.option("--onnx", "onnx_path", type=click.Path(dir_okay=False), default=None,
                     help="Path of the portable ONNX model [default: OUT/MODEL.onnx]."),
        click.option("--trt-onnx", type=click.Path(dir_okay=False), default=None,
                     help="Path of the TensorRT-lowered ONNX model [default: beside --onnx, .trt.onnx]."),
        click.option("--opset", type=click.IntRange(18, 23), default=18, show_default=True, help="Default-domain opset."),
        click.option("--fp16", is_flag=True, help="Float16 weights and activations (float32 inputs/outputs; SAINT similarity stays float32)."),
        click.option("--force", is_flag=True, help="Replace existing outputs."),
        click.option("--quiet", is_flag=True, help="No progress lines."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


@main.command("run", hidden=True)
@model_options
@export_options
@input_options
@tolerance_option
@click.option("--engine", type=click.Path(dir_okay=False), default=None, help="Also build a TensorRT engine (needs TensorRT and a GPU).")
@click.option("--engine-batch", default="1,8,32", show_default=True, help="Engine optimization profile: min,opt,max batch.")
@click.option("--precision", type=click.Choice(["fp32", "fp16", "bf16"]), default="fp32", show_default=True,
              help="Engine precision (the plugin's similarity math stays fp32).")
@click.option("--timing-cache", type=click.Path(dir_okay=False), default=None, help="TensorRT timing cache, reused across builds.")
@click.option("--version-compatible", is_flag=True, help="Build a version-compatible engine.")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True, help="onnxruntime device for validation.")
@reports_errors
def run_cmd(out, onnx_path, trt_onnx, opset, fp16, force, quiet, image_dir, batch, tol, engine, engine_batch, precision,
            timing_cache, version_compatible, device, **opts) -> None:
    """Export MODEL to ONNX (portable + TensorRT-lowered) and validate against PyTorch.

    Writes OUT/MODEL.onnx, OUT/MODEL.trt.onnx and OUT/validation.json; exits 1 when
    validation fails, 0 when it passes.
    """
    from .io import check_writable

    progress = Progress(quiet)
    if engine:
        check_writable(engine, force)
    report_path = Path(out or Path("out") / resolve_alias(opts["model"])) / "validation.json"
    check_writable(report_path, force)
    built, result, out = _export(opts, out, onnx_path, trt_onnx, opset, fp16, force, progress)
    passed = _validate_and_report(result.portable, built, image_dir, batch, tol, device, report_path, force, progress)
    if engine:
        from .engine import EngineOptions, engine_from_onnx, require_tensorrt
        from .export.pipeline import metadata_of

        require_tensorrt()
        lo, opt, hi = (_batches(engine_batch, "--engine-batch") + [0, 0, 0])[:3]
        options = EngineOptions(batch=(lo, opt, hi), precision=precision, version_compatible=version_compatible,
                                timing_cache=Path(timing_cache) if timing_cache else None)
        progress(f"building the TensorRT engine {engine}")
        plan = engine_from_onnx(result.tensorrt, Path(engine), options, force, metadata_of(result.tensorrt))
        click.echo(f"engine: {plan} (sidecar {plan}.json)")
    sys.exit(0 if passed else 1)


def output_stem(alias: str) -> str:
    """An alias as a file or folder name."""
    return alias.replace("/", "_")


def resolve_alias(model: str) -> str:
    from .registry import resolve

    return output_stem(resolve(model).alias)


@main.command("export")
@model_options
@export_options
@reports_errors
def export_cmd(out, onnx_path, trt_onnx, opset, fp16, force, quiet, **opts) -> None:
    """Export MODEL to a portable ONNX model and a TensorRT-lowered one (no validation)."""
    _export(opts, out, onnx_path, trt_onnx, opset, fp16, force, Progress(quiet))


@main.command("validate")
@click.argument("onnx_file", type=click.Path(dir_okay=False))
@click.option("--model", default=None, help="Model alias [default: read from the ONNX metadata].")
@click.option("--checkpoint", type=click.Path(dir_okay=False), default=None, help="Weights, when exported from a checkpoint.")
@click.option("--weights", type=click.Choice(["random", "pretrained"]), default=None, help="Override the weights in the metadata.")
@input_options
@tolerance_option
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True)
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None, help="Write the report as JSON.")
@click.option("--force", is_flag=True, help="Replace an existing report.")
@reports_errors
def validate_cmd(onnx_file, model, checkpoint, weights, image_dir, batch, tol, device, json_path, force) -> None:
    """Run a portable ONNX model in onnxruntime and compare with PyTorch: logits, tokens kept
    per layer, kept_index, top-1. Exit 0 on PASS, 1 on FAIL."""
    from .export.rebuild import built_from_onnx
    from .io import check_writable

    if not Path(onnx_file).is_file():
        raise InputError(f"ONNX model {onnx_file} does not exist")
    if json_path:
        check_writable(json_path, force)
    built = built_from_onnx(Path(onnx_file), model, checkpoint, weights)
    passed = _validate_and_report(Path(onnx_file), built, image_dir, batch, tol, device, json_path, force, Progress())
    sys.exit(0 if passed else 1)


def _batches(text: str, flag: str = "--batch") -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"{flag}: expected a comma-separated list of integers; got {text!r}") from None
    if not values or min(values) < 1:
        raise ConfigError(f"{flag}: sizes must be >= 1; got {text!r}")
    return values


@main.command("bench")
@model_options
@click.option("--backend", "backends", multiple=True, type=click.Choice(["ort", "torch", "trt"]), default=("ort", "torch"),
              show_default=True, help="Backends to time (repeatable).")
@click.option("--batch", "batch_text", default="1,8,32", show_default=True, help="Comma-separated batch sizes.")
@click.option("--iters", type=int, default=10, show_default=True, help="Timed iterations per point (at least).")
@click.option("--warmup", type=int, default=2, show_default=True)
@click.option("--min-seconds", type=float, default=1.0, show_default=True, help="Minimum timed seconds per point.")
@click.option("--images", "image_dir", type=click.Path(file_okay=False), default=None, help="Folder of your images.")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True)
@click.option("--out", type=click.Path(file_okay=False), default=None, help="Folder for bench.json and bench.png [default: out/MODEL].")
@click.option("--force", is_flag=True)
@reports_errors
def bench_cmd(backends, batch_text, iters, warmup, min_seconds, image_dir, device, out, force, **opts) -> None:
    """Dense vs SAINT throughput (images/s, latency percentiles) with the FLOP ratio beside it.

    onnxruntime models are exported to a temporary folder first. Inputs are redundant
    images (photos + generated), cycled to each batch size.
    """
    from . import bench
    from .io import check_writable, write_json
    from .plots import plot_throughput

    batches = _batches(batch_text)
    if "trt" in backends:
        from .engine import require_tensorrt

        require_tensorrt()
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            from .errors import MissingDependencyError

            raise MissingDependencyError("--device cuda: no CUDA GPU is visible to PyTorch")
    out_dir = Path(out or Path("out") / resolve_alias(opts["model"]))
    json_path, png_path = out_dir / "bench.json", out_dir / "bench.png"
    check_writable(json_path, force)
    check_writable(png_path, force)
    progress = Progress()
    built = build_from_options(opts)
    rows, ratios, tokens = bench.run_bench(built, backends, batches, image_dir, device, warmup, iters, min_seconds, progress)
    summary = bench.summarize(rows, ratios)
    click.echo(bench.summary_table(summary, rows))
    write_json(json_path, bench.report_json(built.config.alias, rows, summary, {"tokens_after_each_block": tokens,
                                                                                  "schedule": built.schedule.to_json()}), force)
    plot_throughput(png_path, f"{built.config.alias}: dense vs SAINT", batches, bench.throughput_series(rows, batches), force)
    click.echo(f"report: {json_path}\nplot: {png_path}")


@main.command("check")
@click.argument("target")
@click.option("--model", default=None, help="For an ONNX/PLAN target: the alias it came from [default: its metadata].")
@click.option("--checkpoint", type=click.Path(dir_okay=False), default=None)
@click.option("--weights", type=click.Choice(["random", "pretrained"]), default=None)
@click.option("--images", "image_dir", type=click.Path(file_okay=False), default=None, help="Folder of your images.")
@click.option("--batch", type=int, default=8, show_default=True)
@click.option("--dataset", type=click.Path(file_okay=False), default=None, help="ImageFolder-style folder: accuracy per backend.")
@click.option("--limit", type=int, default=None, help="Use at most this many dataset images.")
@click.option("--tol", "tol", multiple=True, metavar="NAME=ATOL[:RTOL]", help="logits tolerance (default 1e-4:1e-4; fp16 1e-2:1e-2).")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True)
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None)
@click.option("--force", is_flag=True)
@reports_errors
def check_cmd(target, model, checkpoint, weights, image_dir, batch, dataset, limit, tol, device, json_path, force) -> None:
    """Compare PyTorch (dense and SAINT), onnxruntime and TensorRT on the same images.

    TARGET is a model alias (exported to a temporary ONNX first), a portable .onnx, or a .plan
    engine (needs TensorRT). Prints every comparison, then PASS or FAIL (exit 0 or 1).
    With --dataset, also top-1 accuracy of each backend (labels = sorted subfolder names).
    """
    import tempfile

    from . import check
    from .images import gather_inputs
    from .io import check_writable, write_json
    from .validate import parse_tolerances

    if json_path:
        check_writable(json_path, force)
    progress = Progress()
    atol, rtol = parse_tolerances(tol).get("logits", (1e-4, 1e-4))
    with tempfile.TemporaryDirectory(prefix="saint-check.") as tmp:
        built, backends = check.backends_for_target(target, Path(tmp), model, checkpoint, weights, device, progress)
        pixels, names = gather_inputs(built.config, image_dir=image_dir, batch=batch)
        progress(f"running {', '.join(backends)} on {len(names)} images")
        result = check.compare_backends(pixels, backends, atol, rtol)
        click.echo(check.comparison_table(result))
        report = None
        if dataset:
            report = check.dataset_accuracy(dataset, built, backends, batch=max(batch, 1), limit=limit, progress=progress)
            click.echo(report.table())
    click.echo("PASS" if result["passed"] else "FAIL: outputs outside tolerance (see the table)")
    if json_path:
        write_json(json_path, check.as_json({"target": target, "inputs": names, "comparison": result},
                                            {"dataset": check.asdict(report)} if report else None), force)
        click.echo(f"report: {json_path}")
    sys.exit(0 if result["passed"] else 1)


@main.command("triton")
@click.argument("engine", type=click.Path(dir_okay=False))
@click.option("--repo", required=True, type=click.Path(file_okay=False), help="Model repository folder.")
@click.option("--name", default=None, help="Model name in the repository [default: the engine's model alias].")
@click.option("--plugin", type=click.Path(dir_okay=False), default=None, help="libsaint_plugins.so to copy beside the model.")
@click.option("--max-batch", type=int, default=None, help="max_batch_size [default: the engine profile's max].")
@click.option("--instances", type=click.IntRange(1, 64), default=1, show_default=True, help="GPU instances.")
@click.option("--force", is_flag=True, help="Replace an existing model folder.")
@reports_errors
def triton_cmd(engine, repo, name, plugin, max_batch, instances, force) -> None:
    """Write a Triton model repository for ENGINE (a plan built by saint-export --engine).

    Dynamic batching stays off unless every pruning layer uses fixed_r: SAINT's vote takes
    the batch mean, so batching requests together would change their answers.
    """
    from .triton import triton_repository_from_engine

    target = triton_repository_from_engine(Path(engine), Path(repo), name, Path(plugin) if plugin else None,
                                           max_batch, instances, force)
    click.echo(f"Triton model: {target} (config.pbtxt validated with Triton's ModelConfig)")
    click.echo(f"run: LD_PRELOAD={target}/libsaint_plugins.so tritonserver --model-repository={Path(repo).resolve()}")


if __name__ == "__main__":  # pragma: no cover
    main()
