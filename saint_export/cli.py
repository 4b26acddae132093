"""The ``saint-export`` command line (click)."""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path
from typing import Any, Callable

import click

from .errors import EXIT_CODES, SaintExportError

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

    plot = plot or f"{opts['model']}_tokens.png"
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


if __name__ == "__main__":  # pragma: no cover
    main()
