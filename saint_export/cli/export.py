"""The main job (``saint-export MODEL`` = ``run``), ``export`` and ``validate``."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..export.pipeline import artifact_paths, onnx_models_from_torch, output_folder
from ..io import check_writable, write_json
from ..models.record import built_from_onnx
from ..models.registry import resolve
from ..tensorrt.engine import (
    EngineOptions,
    engine_from_onnx,
    refuse_unsupported_precision,
    require_tensorrt,
)
from ..verify.runners import POLYGRAPHY_USE
from ..verify.validate import validate_with_inputs
from .llava import (
    llava_options,
    llava_overrides,
    not_vision,
    refuse_llava_options,
    run_vision,
    validate_vision_file,
)
from .options import (
    Progress,
    artifact_model_options,
    batch_option,
    build_from_options,
    device_option,
    force_option,
    images_option,
    json_option,
    model_options,
    out_option,
    parse_batches,
    quiet_option,
    reports_errors,
    require_file,
    stack_options,
    tolerance_option,
)

export_options = stack_options(
    out_option,
    click.option("--onnx", "onnx_path", type=click.Path(dir_okay=False), default=None,
                 help="Path of the portable ONNX model [default: OUT/MODEL.onnx]."),
    click.option("--trt-onnx", type=click.Path(dir_okay=False), default=None,
                 help="Path of the TensorRT-lowered ONNX model [default: beside --onnx, .trt.onnx]."),
    click.option("--opset", type=click.IntRange(18, 23), default=18, show_default=True, help="Default-domain opset of the portable model."),
    click.option("--fp16", is_flag=True, help="Float16 weights and activations (float32 inputs/outputs; SAINT similarity stays float32)."),
    force_option,
    quiet_option,
)


def _export(opts, out, onnx_path, trt_onnx, opset, fp16, force, progress, built=None):
    portable, tensorrt = artifact_paths(opts["model_name"], out, onnx_path, trt_onnx, force)
    built = built or build_from_options(opts)
    result = onnx_models_from_torch(built, portable, tensorrt, opset=opset, fp16=fp16, force=force, progress=progress)
    click.echo(f"portable ONNX (onnxruntime, any runtime): {result.portable}")
    click.echo(f"TensorRT-lowered ONNX (needs libsaint_plugins.so): {result.tensorrt}")
    click.echo(f"{result.drop_nodes} SaintTokenDrop node(s); schedule: {built.schedule.describe()}")
    return built, result


def _validate(onnx_path, built, image_dir, batch, tol, device, json_path, force, progress, polygraphy_dir=None) -> bool:
    report = validate_with_inputs(onnx_path, built, image_dir, batch, tol, device, progress, polygraphy_dir, force)
    click.echo(report.table())
    if polygraphy_dir:
        click.echo(f"polygraphy data: {polygraphy_dir} ({POLYGRAPHY_USE.replace('MODEL.onnx', str(onnx_path))})")
    if json_path:
        write_json(json_path, report.to_json(), force)
        click.echo(f"report: {json_path}")
    return report.passed


@click.command("run", hidden=True)
@model_options
@export_options
@images_option
@batch_option
@tolerance_option
@click.option("--engine", type=click.Path(dir_okay=False), default=None, help="Also build a TensorRT engine (needs TensorRT and a GPU).")
@click.option("--engine-batch", default="1,8,32", show_default=True, help="Engine optimization profile: min,opt,max batch.")
@click.option("--precision", type=click.Choice(["fp32", "fp16", "bf16"]), default="fp32", show_default=True,
              help="Engine precision (the plugin's similarity math stays fp32).")
@click.option("--timing-cache", type=click.Path(dir_okay=False), default=None, help="TensorRT timing cache, reused across builds.")
@click.option("--version-compatible", is_flag=True, help="Build a version-compatible engine.")
@click.option("--vision", is_flag=True, help="LLaVA models: export the vision encoder (tower + projector, ViT-only SAINT).")
@llava_options
@device_option
@reports_errors
def run_cmd(out, onnx_path, trt_onnx, opset, fp16, force, quiet, image_dir, batch, tol, engine, engine_batch, precision,
            timing_cache, version_compatible, vision, device, **opts) -> None:
    """Export MODEL to ONNX (portable + TensorRT-lowered) and validate against PyTorch.

    Writes OUT/MODEL.onnx, OUT/MODEL.trt.onnx and OUT/validation.json; exits 1 when
    validation fails, 0 when it passes. For a LLaVA model, --vision writes
    OUT/MODEL_vision.onnx, OUT/MODEL_vision.trt.onnx and OUT/vision_validation.json.
    """

    progress = Progress(quiet)
    cfg = resolve(opts["model_name"])
    if cfg.is_llava and not vision:
        raise not_vision(cfg.alias)
    if not vision:
        refuse_llava_options(opts)
    options = None
    if engine:
        check_writable(engine, force)
        lo, mid, hi = (parse_batches(engine_batch, "--engine-batch") + [0, 0, 0])[:3]
        options = EngineOptions(batch=(lo, mid or lo, hi or mid or lo), precision=precision, version_compatible=version_compatible,
                                timing_cache=Path(timing_cache) if timing_cache else None).validate()
        refuse_unsupported_precision(options)
    if vision:
        return run_vision(opts, llava_overrides(opts), out, onnx_path, trt_onnx, opset, fp16, force, quiet, image_dir, batch, tol, device,
                          options, engine)
    built = build_from_options(opts)
    report_path = check_writable(output_folder(opts["model_name"], out) / "validation.json", force)
    built, result = _export(opts, out, onnx_path, trt_onnx, opset, fp16, force, progress, built)
    passed = _validate(result.portable, built, image_dir, batch, tol, device, report_path, force, progress)
    if engine:
        require_tensorrt()
        progress(f"building the TensorRT engine {engine}")
        plan = engine_from_onnx(result.tensorrt, Path(engine), options, force)
        click.echo(f"engine: {plan} (sidecar {plan}.json)")
    sys.exit(0 if passed else 1)


@click.command("export")
@model_options
@export_options
@reports_errors
def export_cmd(out, onnx_path, trt_onnx, opset, fp16, force, quiet, **opts) -> None:
    """Export MODEL to a portable ONNX model and a TensorRT-lowered one (no validation)."""
    _export(opts, out, onnx_path, trt_onnx, opset, fp16, force, Progress(quiet))


@click.command("validate")
@click.argument("onnx_file", type=click.Path(dir_okay=False))
@artifact_model_options
@images_option
@batch_option
@tolerance_option
@device_option
@json_option
@click.option("--polygraphy", "polygraphy_dir", type=click.Path(file_okay=False), default=None,
              help="Also write the inputs and PyTorch's logits for 'polygraphy run --load-inputs/--load-outputs' here.")
@force_option
@reports_errors
def validate_cmd(onnx_file, model_name, weights, checkpoint, image_dir, batch, tol, device, json_path, polygraphy_dir, force) -> None:
    """Run a portable ONNX model in onnxruntime and compare with PyTorch: logits, tokens kept
    per layer, kept_index, top-1 (or embedding cosine). Exit 0 on PASS, 1 on FAIL."""

    require_file(onnx_file, "ONNX model")
    if json_path:
        check_writable(json_path, force)
    from ..export.vision import is_vision_onnx

    if is_vision_onnx(Path(onnx_file)):
        sys.exit(validate_vision_file(Path(onnx_file), model_name, checkpoint, weights, image_dir, batch, tol, device, json_path,
                                      force))
    built = built_from_onnx(Path(onnx_file), model_name, checkpoint, weights)
    passed = _validate(Path(onnx_file), built, image_dir, batch, tol, device, json_path, force, Progress(), polygraphy_dir)
    sys.exit(0 if passed else 1)


COMMANDS = [run_cmd, export_cmd, validate_cmd]
