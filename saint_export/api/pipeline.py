"""The main pipeline's jobs: ``export`` (ONNX, portable + TensorRT-lowered), ``validate`` (an exported model
against PyTorch), ``build_engine`` and ``run`` (the main job: all three). LLaVA models export their
vision encoder."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Callable

from ..export.pipeline import onnx_models_from_torch
from ..io import check_writable, write_json
from ..models.record import built_from_onnx
from ..models.registry import resolve
from ..tensorrt.engine import (
    engine_from_onnx,
    refuse_unsupported_precision,
    require_tensorrt,
)
from ..verify.runners import POLYGRAPHY_USE
from ..verify.validate import validate_with_inputs
from . import llava
from .options import (
    ArtifactSpec,
    EngineRequest,
    ExportOptions,
    ModelSpec,
    ValidateOptions,
)
from .paths import artifact_paths, output_folder
from .reports import EngineReport, ExportReport, RunReport, ValidateReport

Progress = Callable[[str], None]


def _silent(message: str) -> None:
    pass


def export(model: ModelSpec, options: ExportOptions = ExportOptions(), progress: Progress = _silent, built=None) -> ExportReport:
    """Trace ``model`` once and write its portable and TensorRT-lowered ONNX models."""
    portable, tensorrt = artifact_paths(model.name, options.out, options.onnx, options.trt_onnx, options.force)
    built = built or model.build()
    result = onnx_models_from_torch(built, portable, tensorrt, opset=options.opset, fp16=options.fp16, force=options.force,
                                    progress=progress)
    return ExportReport(result.portable, result.tensorrt, result.drop_nodes,
                        f"{result.drop_nodes} SaintTokenDrop node(s); schedule: {built.schedule.describe()}")


def validate(onnx_path: str | Path, artifact: ArtifactSpec = ArtifactSpec(), options: ValidateOptions = ValidateOptions(),
             progress: Progress = _silent, built=None) -> ValidateReport:
    """Compare an exported model, run by ``options.backend``, with the PyTorch model it came from
    (rebuilt from its metadata unless ``built`` is given): every output, tokens kept per layer."""
    onnx_path = Path(onnx_path)
    if options.json:
        check_writable(options.json, options.force)
    if llava.is_vision_file(onnx_path):
        return llava.validate_vision_file(onnx_path, artifact, options, progress)
    if built is None:
        built = _built_from_onnx(onnx_path, artifact)
    report = validate_with_inputs(onnx_path, built, image_dir=options.images, batch=options.batch, tol=options.tol,
                                  device=options.device, backend=options.backend, progress=progress,
                                  polygraphy_dir=Path(options.polygraphy) if options.polygraphy else None, force=options.force)
    use = (f"polygraphy data: {options.polygraphy} ({POLYGRAPHY_USE.replace('MODEL.onnx', str(onnx_path))})"
           if options.polygraphy else None)
    return _written(ValidateReport(report, Path(options.json) if options.json else None, use), options.force)


def _built_from_onnx(onnx_path: Path, artifact: ArtifactSpec):
    return built_from_onnx(onnx_path, artifact.model, artifact.checkpoint, artifact.weights)


def _written(report: ValidateReport, force: bool) -> ValidateReport:
    if report.json:
        write_json(report.json, report.to_json(), force)
    return report


def check_engine_request(engine: EngineRequest, force: bool) -> None:
    """Before any export: the plan may be written and the precision is one this TensorRT builds."""
    check_writable(engine.path, force)
    refuse_unsupported_precision(engine.options)


def build_engine(lowered_onnx: str | Path, engine: EngineRequest, force: bool = False, progress: Progress = _silent) -> EngineReport:
    """A TensorRT engine (and its JSON sidecar) from a TensorRT-lowered model; needs TensorRT and a GPU."""
    require_tensorrt()
    progress(f"building the TensorRT engine {engine.path}")
    return EngineReport(engine_from_onnx(Path(lowered_onnx), Path(engine.path), engine.options, force))


def run(model: ModelSpec, export_options: ExportOptions = ExportOptions(), validate_options: ValidateOptions = ValidateOptions(),
        engine: EngineRequest | None = None, progress: Progress = _silent, vision: bool = False) -> RunReport:
    """The main job: export, validate against PyTorch (report at OUT/validation.json unless
    ``validate_options.json`` says where), and build the engine when asked. ``vision``: a LLaVA
    model's vision encoder (OUT/<alias>_vision.onnx, OUT/vision_validation.json)."""
    cfg = resolve(model.name)
    if cfg.is_llava and not vision:
        raise llava.not_vision(cfg.alias)
    if not vision and model.llava:
        raise llava.NOT_LLAVA
    if engine:
        check_engine_request(engine, export_options.force)
    if vision:
        exported, checked = llava.run_vision(model, export_options, validate_options, progress)
    else:
        built = model.build()
        folder = output_folder(model.name, export_options.out)
        json_path = check_writable(validate_options.json or folder / "validation.json", export_options.force)
        exported = export(model, export_options, progress, built)
        checked = validate(exported.portable, options=_with_json(validate_options, json_path, export_options.force),
                           progress=progress, built=built)
    built_engine = build_engine(exported.tensorrt, engine, export_options.force, progress) if engine else None
    return RunReport(exported, checked, built_engine)


def _with_json(options: ValidateOptions, json_path: Path, force: bool) -> ValidateOptions:
    return replace(options, json=json_path, force=force or options.force)
