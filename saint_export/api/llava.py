"""The LLaVA side of the jobs: export + validate the vision encoder (ViT-only SAINT), validate an
exported one, and benchmark the whole model's prefill and decode per mode."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from .. import bench_llava as llava_bench
from ..errors import ConfigError
from ..export.vision import is_vision_onnx, vision_from_onnx, vision_models_from_torch
from ..inputs import gather_inputs
from ..io import check_writable, write_json
from ..models.llava import build_llava, build_vision, require_llava
from ..models.registry import resolve
from ..verify.vision import validate_vision_with_inputs
from .options import (
    ArtifactSpec,
    BenchOptions,
    ExportOptions,
    ModelSpec,
    ValidateOptions,
)
from .paths import artifact_paths, output_folder
from .reports import ExportReport, FilesReport, ValidateReport

Progress = Callable[[str], None]
NOT_LLAVA = ConfigError("--mode, --vit-layer, --keep, --rule, --quirk, --llm-layers and --llm-threshold are LLaVA options")


def not_vision(alias: str) -> ConfigError:
    return ConfigError(f"{alias} is a vision-language model (LLaVA): 'saint-export {alias} --vision' exports its vision encoder; "
                       f"'saint-export generate {alias}' and 'saint-export bench {alias}' run the whole model")


def llava_settings(model: ModelSpec, alias: str) -> dict:
    """LlavaSaint fields: ``model.llava`` plus --threshold, --k and --gamma, which set the tower's
    bipartite rule; the ViT schedule's other options are refused."""
    given = [f"--{k.replace('_', '-')}" for k in ("layers", "fixed_r", "vote") if getattr(model, k) is not None]
    if given:
        raise ConfigError(f"{alias} is a LLaVA model: {given[0]} sets a ViT schedule; use --mode, --vit-layer, --keep, --rule, "
                          "--llm-layers, --llm-threshold (and --threshold, --k, --gamma for --rule bipartite)")
    return {**model.llava, **{k: getattr(model, k) for k in ("threshold", "k", "gamma") if getattr(model, k) is not None}}


def is_vision_file(path: Path) -> bool:
    return path.is_file() and is_vision_onnx(path)


def _inputs(options: ValidateOptions) -> dict:
    return {"image_dir": options.images, "batch": options.batch, "tol": options.tol, "device": options.device,
            "backend": options.backend}


def validate_vision_file(onnx_path: Path, artifact: ArtifactSpec, options: ValidateOptions, progress: Progress) -> ValidateReport:
    """``validate`` on an exported vision encoder: rebuilt from its metadata, compared."""
    built = vision_from_onnx(onnx_path, artifact.model, artifact.checkpoint, artifact.weights)
    report = validate_vision_with_inputs(onnx_path, built, **_inputs(options), progress=progress)
    json_path = Path(options.json) if options.json else None
    if json_path:
        write_json(json_path, report.to_json(), options.force)
    return ValidateReport(report, json_path)


def run_vision(model: ModelSpec, export_options: ExportOptions, validate_options: ValidateOptions,
               progress: Progress) -> tuple[ExportReport, ValidateReport]:
    """``saint-export MODEL --vision``: export the vision encoder and validate it (OUT/vision_validation.json)."""
    cfg = resolve(model.name)
    require_llava(cfg)
    overrides = llava_settings(model, cfg.alias)
    force = export_options.force
    portable, tensorrt = artifact_paths(model.name, export_options.out, export_options.onnx, export_options.trt_onnx, force,
                                        suffix="_vision")
    report_path = check_writable(validate_options.json or portable.parent / "vision_validation.json", force)
    built = build_vision(cfg, model.weights, model.checkpoint, overrides, model.seed)
    result = vision_models_from_torch(built, portable, tensorrt, opset=export_options.opset, fp16=export_options.fp16, force=force,
                                      progress=progress)
    s = built.saint
    how = (f"iterative drop to {s.keep} tokens, divisor {s.divisor}{', upstream quirk' if s.quirk else ''}" if s.rule == "iterative"
           else f"bipartite rule tau={s.threshold:g} K={s.k}")
    exported = ExportReport(result.portable, result.tensorrt, result.drop_nodes,
                            f"vision encoder: tower layer {s.vit_layer} pruned ({how}); outputs image_embeds, kept_index",
                            "needs libsaint_plugins.so" if result.drop_nodes else "standard ops only, no plugin")
    report = validate_vision_with_inputs(result.portable, built, **_inputs(validate_options), progress=progress)
    write_json(report_path, report.to_json(), force)
    return exported, ValidateReport(report, report_path)


def llava_from_spec(model: ModelSpec):
    """The whole LLaVA model, patched in hybrid mode with the config's settings and the spec's
    (each mode is then a switch: ``use_mode``), and the mode the config or the spec names."""
    cfg = resolve(model.name)
    require_llava(cfg)
    overrides = llava_settings(model, cfg.alias)
    mode = overrides.pop("mode", None) or (cfg.llava or {}).get("mode", "hybrid")
    return build_llava(cfg, model.weights, model.checkpoint, {**overrides, "mode": "hybrid"}, model.seed), mode


def bench(model: ModelSpec, options: BenchOptions, progress: Progress) -> FilesReport:
    """Prefill and decode per mode, tokens per layer, on the CPU (OUT/bench_llava.json)."""
    if options.device != "cpu" or tuple(options.backends) != ("ort", "torch"):
        raise ConfigError("a LLaVA bench times PyTorch on the CPU; --device and --backend are for vision transformers")
    batches = options.batches or (2,)
    if len(batches) != 1:
        raise ConfigError("a LLaVA bench takes one batch size (--batch N)")
    json_path = check_writable(output_folder(model.name, options.out) / "bench_llava.json", options.force)
    built, _ = llava_from_spec(model)
    pixels, _ = gather_inputs(built.config, image_dir=options.images, batch=batches[0])
    results, info = llava_bench.bench_llava(built, pixels, new_tokens=options.new_tokens, rounds=options.iters, progress=progress)
    data = llava_bench.report_json(results, info)
    write_json(json_path, data, options.force)
    return FilesReport(llava_bench.table(results, info), data, {"report": json_path})
