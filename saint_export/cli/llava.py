"""The LLaVA side of the command line: ``MODEL --vision`` (export + validate the vision encoder),
and the options that choose SAINT's VLM mode."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..errors import ConfigError
from .options import Number, Progress, reports_errors, stack_options

llava_options = stack_options(
    click.option("--mode", type=click.Choice(["vit", "llm", "hybrid"]), default=None,
                 help="LLaVA: SAINT in the vision tower, in the language model's prefill, or both [default: the config's]."),
    click.option("--vit-layer", type=Number(0, integer=True), default=None, help="LLaVA: the tower layer whose output is pruned (published: 19)."),
    click.option("--keep", type=Number(2, integer=True), default=None, help="LLaVA: tokens after the tower's drop, class token included (published: 376)."),
    click.option("--rule", type=click.Choice(["iterative", "bipartite"]), default=None,
                 help="LLaVA tower rule: the official iterative drop (static count) or SAINT's bipartite vote."),
    click.option("--quirk/--no-quirk", default=None, help="LLaVA iterative drop: upstream's per-round divisor (default) or a constant one."),
    click.option("--llm-layers", default=None, help="LLaVA: language-model layers that prune in prefill, 'START-END' (published: 7-16)."),
    click.option("--llm-threshold", type=Number(-1.0, 1.0), default=None, help="LLaVA: tau of the language model's rule (published: 0.83)."),
)


def llava_overrides(opts: dict) -> dict:
    """The LLaVA options given, as LlavaSaint fields."""
    fields = {"mode": opts.pop("mode", None), "vit_layer": opts.pop("vit_layer", None), "keep": opts.pop("keep", None),
              "rule": opts.pop("rule", None), "quirk": opts.pop("quirk", None), "llm_threshold": opts.pop("llm_threshold", None)}
    layers = opts.pop("llm_layers", None)
    if layers is not None:
        start, sep, end = layers.partition("-")
        try:
            fields["llm_start"], fields["llm_end"] = int(start), int(end if sep else start)
        except ValueError:
            raise ConfigError(f"--llm-layers: expected START-END, e.g. 7-16; got {layers!r}") from None
    return {k: v for k, v in fields.items() if v is not None}


def refuse_llava_options(opts: dict) -> None:
    """For a vision transformer: the LLaVA options given (popped) are refused in one line."""
    if llava_overrides(opts):
        raise ConfigError("--mode, --vit-layer, --keep, --rule, --quirk, --llm-layers and --llm-threshold are LLaVA options")


def llava_settings(opts: dict, alias: str, overrides: dict) -> dict:
    """LlavaSaint fields from the command line: the LLaVA options (``overrides``) plus --threshold,
    --k and --gamma, which set the tower's bipartite rule; the ViT schedule's other options are refused."""
    given = [f"--{k.replace('_', '-')}" for k in ("layers", "fixed_r", "vote") if opts.get(k) is not None]
    if given:
        raise ConfigError(f"{alias} is a LLaVA model: {given[0]} sets a ViT schedule; use --mode, --vit-layer, --keep, --rule, "
                          "--llm-layers, --llm-threshold (and --threshold, --k, --gamma for --rule bipartite)")
    return {**overrides, **{k: opts.pop(k) for k in ("threshold", "k", "gamma") if opts.get(k) is not None}}


def not_vision(alias: str) -> ConfigError:
    return ConfigError(f"{alias} is a vision-language model (LLaVA): 'saint-export {alias} --vision' exports its vision encoder; "
                       f"'saint-export generate {alias}' and 'saint-export bench {alias}' run the whole model")


def run_vision(opts: dict, overrides: dict, out, onnx_path, trt_onnx, opset, fp16, force, quiet, image_dir, batch, tol, device, engine_options,
               engine) -> None:
    """``saint-export MODEL --vision``: export the vision encoder, validate it, optionally build its engine."""
    from ..export.pipeline import artifact_paths
    from ..export.vision import vision_models_from_torch
    from ..io import check_writable, write_json
    from ..models.llava import build_vision, require_llava
    from ..models.registry import resolve
    from ..verify.vision import validate_vision_with_inputs

    cfg = resolve(opts["model_name"])
    require_llava(cfg)
    overrides = llava_settings(opts, cfg.alias, overrides)
    progress = Progress(quiet)
    portable, tensorrt = artifact_paths(opts["model_name"], out, onnx_path, trt_onnx, force, suffix="_vision")
    report_path = check_writable(portable.parent / "vision_validation.json", force)
    built = build_vision(cfg, opts.get("weights"), opts.get("checkpoint"), overrides, opts.get("seed", 0))
    result = vision_models_from_torch(built, portable, tensorrt, opset, fp16, force, progress)
    s = built.saint
    click.echo(f"portable ONNX (onnxruntime, any runtime): {result.portable}")
    plugin = "needs libsaint_plugins.so" if result.drop_nodes else "standard ops only, no plugin"
    click.echo(f"TensorRT-lowered ONNX ({plugin}): {result.tensorrt}")
    how = (f"iterative drop to {s.keep} tokens, divisor {s.divisor}{', upstream quirk' if s.quirk else ''}" if s.rule == "iterative"
           else f"bipartite rule tau={s.threshold:g} K={s.k}")
    click.echo(f"vision encoder: tower layer {s.vit_layer} pruned ({how}); outputs image_embeds, kept_index")
    report = validate_vision_with_inputs(result.portable, built, image_dir, batch, tol, device, progress)
    click.echo(report.table())
    write_json(report_path, report.to_json(), force)
    click.echo(f"report: {report_path}")
    if engine:
        from ..tensorrt.engine import engine_from_onnx, require_tensorrt

        require_tensorrt()
        progress(f"building the TensorRT engine {engine}")
        plan = engine_from_onnx(result.tensorrt, Path(engine), engine_options, force)
        click.echo(f"engine: {plan} (sidecar {plan}.json)")
    sys.exit(0 if report.passed else 1)


def validate_vision_file(onnx_file: Path, model_name, checkpoint, weights, image_dir, batch, tol, device, json_path, force) -> int:
    """``validate`` on an exported vision encoder: rebuilt from its metadata, compared; the exit code."""
    from ..export.vision import vision_from_onnx
    from ..io import write_json
    from ..verify.vision import validate_vision_with_inputs

    built = vision_from_onnx(onnx_file, model_name, checkpoint, weights)
    report = validate_vision_with_inputs(onnx_file, built, image_dir, batch, tol, device, Progress())
    click.echo(report.table())
    if json_path:
        write_json(json_path, report.to_json(), force)
        click.echo(f"report: {json_path}")
    return 0 if report.passed else 1


def llava_from_options(opts: dict, overrides: dict):
    """The whole LLaVA model, patched in hybrid mode with the config's settings and ``overrides``
    (each mode is then a switch: ``use_mode``)."""
    from ..models.llava import build_llava, require_llava
    from ..models.registry import resolve

    cfg = resolve(opts["model_name"])
    require_llava(cfg)
    overrides = llava_settings(opts, cfg.alias, overrides)
    mode = overrides.pop("mode", None) or (cfg.llava or {}).get("mode", "hybrid")
    return build_llava(cfg, opts.get("weights"), opts.get("checkpoint"), {**overrides, "mode": "hybrid"}, opts.get("seed", 0)), mode


def bench_llava_cmd(opts: dict, batch_text: str | None, iters: int, image_dir, out, force, new_tokens: int) -> None:
    """``saint-export bench LLAVA_MODEL``: prefill and decode per mode, tokens per layer."""
    from .. import bench_llava
    from ..export.pipeline import output_folder
    from ..inputs import gather_inputs
    from ..io import check_writable, write_json
    from .options import parse_batches

    overrides = llava_overrides(opts)
    batches = parse_batches(batch_text or "2")
    if len(batches) != 1:
        raise ConfigError("a LLaVA bench takes one batch size (--batch N)")
    json_path = check_writable(output_folder(opts["model_name"], out) / "bench_llava.json", force)
    progress = Progress()
    built, _ = llava_from_options(opts, overrides)
    pixels, _ = gather_inputs(built.config, image_dir=image_dir, batch=batches[0])
    results, info = bench_llava.bench_llava(built, pixels, new_tokens=new_tokens, rounds=iters, progress=progress)
    click.echo(bench_llava.table(results, info))
    write_json(json_path, bench_llava.report_json(results, info), force)
    click.echo(f"report: {json_path}")


@click.command("generate")
@click.argument("model_name", metavar="MODEL")
@click.option("--weights", type=click.Choice(["random", "pretrained"]), default=None,
              help="random: seeded init, no network; pretrained: the hub (needs a network). [default: the config's]")
@click.option("--checkpoint", type=click.Path(), default=None, help="A save_pretrained LLaVA folder (with its processor).")
@click.option("--seed", type=Number(0, 2**63 - 1, integer=True), default=0, show_default=True, help="Seed for random weights.")
@click.option("--image", "image_path", type=click.Path(dir_okay=False), default=None,
              help="The image [default: scikit-image's astronaut].")
@click.option("--prompt", default="What is shown in this image?", show_default=True)
@click.option("--max-new-tokens", type=click.IntRange(1, 4096), default=32, show_default=True)
@click.option("--modes", default=None, help="Comma-separated modes to answer with [default: dense and the config's mode].")
@llava_options
@reports_errors
def generate_cmd(model_name, weights, checkpoint, seed, image_path, prompt, max_new_tokens, modes, **options) -> None:
    """LLaVA: dense and SAINT answers side by side on one image and prompt, with timings."""
    from ..generate import answer, model_inputs, side_by_side
    from ..inputs import load_image, photos
    from ..reference.llava_saint import MODES

    opts = {"model_name": model_name, "weights": weights, "checkpoint": checkpoint, "seed": seed}
    overrides = llava_overrides(options)
    built, mode = llava_from_options(opts, overrides)
    chosen = [m.strip() for m in modes.split(",")] if modes else ["dense", mode]
    bad = [m for m in chosen if m not in ("dense", *MODES)]
    if bad:
        raise ConfigError(f"--modes: {bad[0]!r} is not one of dense, {', '.join(MODES)}")
    image = load_image(image_path) if image_path else photos(("astronaut",))[0]
    inputs, how = model_inputs(built, image, prompt)
    click.echo(f"{built.config.alias} ({built.weights}); image {image_path or 'skimage:astronaut'}; prompt {prompt!r} ({how})")
    click.echo(side_by_side([answer(built, inputs, m, max_new_tokens) for m in chosen]))


COMMANDS = [generate_cmd]
