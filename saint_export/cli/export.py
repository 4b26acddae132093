"""The main job (``saint-export MODEL`` = ``run``), ``export`` and ``validate``: arguments parsed into
the API's options, one API call, its report printed."""

from __future__ import annotations

from pathlib import Path

import click

from .. import api
from ..runtimes import registry
from ..tensorrt.engine import EngineOptions
from .llava import llava_options, llava_overrides
from .options import (
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


backend_option = click.option("--backend", type=click.Choice(registry.names(".onnx")), default="onnxruntime", show_default=True,
                              help="The runtime that runs the portable ONNX model.")


@click.command("run", hidden=True)
@model_options
@export_options
@images_option
@batch_option
@tolerance_option
@backend_option
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
def run_cmd(*, out, onnx_path, trt_onnx, opset, fp16, force, quiet, image_dir, batch, tol, backend, engine, engine_batch, precision,
            timing_cache, version_compatible, vision, device, **opts) -> None:
    """Export MODEL to ONNX (portable + TensorRT-lowered) and validate against PyTorch.

    Writes OUT/MODEL.onnx, OUT/MODEL.trt.onnx and OUT/validation.json; exits 1 when
    validation fails, 0 when it passes. For a LLaVA model, --vision writes
    OUT/MODEL_vision.onnx, OUT/MODEL_vision.trt.onnx and OUT/vision_validation.json.
    """
    engine_request = None
    if engine:
        lo, mid, hi = (parse_batches(engine_batch, "--engine-batch") + [0, 0, 0])[:3]
        engine_request = api.EngineRequest(engine, EngineOptions(
            batch=(lo, mid or lo, hi or mid or lo), precision=precision, version_compatible=version_compatible,
            timing_cache=Path(timing_cache) if timing_cache else None).validate())
    model = model_spec(opts, llava_overrides(opts))
    export_options = api.ExportOptions(out, onnx_path, trt_onnx, opset, fp16, force)
    validate_options = api.ValidateOptions(image_dir, batch, tol, device, backend, force=force)
    echo_report(api.run(model, export_options, validate_options, engine_request, Progress(quiet), vision=vision))


@click.command("export")
@model_options
@export_options
@reports_errors
def export_cmd(*, out, onnx_path, trt_onnx, opset, fp16, force, quiet, **opts) -> None:
    """Export MODEL to a portable ONNX model and a TensorRT-lowered one (no validation)."""
    echo_report(api.export(model_spec(opts), api.ExportOptions(out, onnx_path, trt_onnx, opset, fp16, force), Progress(quiet)))


@click.command("validate")
@click.argument("onnx_file", type=click.Path(dir_okay=False))
@artifact_model_options
@images_option
@batch_option
@tolerance_option
@backend_option
@device_option
@json_option
@click.option("--polygraphy", "polygraphy_dir", type=click.Path(file_okay=False), default=None,
              help="Also write the inputs and PyTorch's logits for 'polygraphy run --load-inputs/--load-outputs' here.")
@force_option
@reports_errors
def validate_cmd(*, onnx_file, model_name, weights, checkpoint, image_dir, batch, tol, backend, device, json_path, polygraphy_dir,
                 force) -> None:
    """Run a portable ONNX model (onnxruntime, or --backend) and compare with PyTorch: logits, tokens
    kept per layer, kept_index, top-1 (or embedding cosine). Exit 0 on PASS, 1 on FAIL."""
    require_file(onnx_file, "ONNX model")
    options = api.ValidateOptions(image_dir, batch, tol, device, backend, json_path, polygraphy_dir, force)
    echo_report(api.validate(onnx_file, api.ArtifactSpec(model_name, weights, checkpoint), options, Progress()))


COMMANDS = [run_cmd, export_cmd, validate_cmd]
