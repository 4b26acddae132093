"""The LLaVA side of the command line: the options that choose SAINT's VLM mode, and ``generate``."""

from __future__ import annotations

import click

from ..api.llava import llava_from_spec
from ..api.options import ModelSpec
from ..errors import ConfigError
from ..inputs import load_image, photos
from ..reference.llava_saint import MODES
from .options import Number, reports_errors, stack_options

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
def generate_cmd(*, model_name, weights, checkpoint, seed, image_path, prompt, max_new_tokens, modes, **options) -> None:
    """LLaVA: dense and SAINT answers side by side on one image and prompt, with timings."""
    from ..generate import answer, model_inputs, side_by_side

    overrides = llava_overrides(options)
    built, mode = llava_from_spec(ModelSpec(model_name, weights, checkpoint, seed, llava=overrides))
    chosen = [m.strip() for m in modes.split(",")] if modes else ["dense", mode]
    bad = [m for m in chosen if m not in ("dense", *MODES)]
    if bad:
        raise ConfigError(f"--modes: {bad[0]!r} is not one of dense, {', '.join(MODES)}")
    image = load_image(image_path) if image_path else photos(("astronaut",))[0]
    inputs, how = model_inputs(built, image, prompt)
    click.echo(f"{built.config.alias} ({built.weights}); image {image_path or 'skimage:astronaut'}; prompt {prompt!r} ({how})")
    click.echo(side_by_side([answer(built, inputs, m, max_new_tokens) for m in chosen]))


COMMANDS = [generate_cmd]
