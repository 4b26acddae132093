"""``list`` and ``inspect``."""

from __future__ import annotations

import sys

import click

from .. import api
from ..models.registry import list_models
from .options import (
    checked_image_dir,
    echo_report,
    model_options,
    model_spec,
    out_option,
    reports_errors,
)


@click.command("list")
@click.argument("pattern", default="*")
@reports_errors
def list_cmd(*, pattern: str) -> None:
    """List model aliases and variants matching PATTERN (shell wildcards)."""

    found = list_models(pattern)
    if not found:
        click.echo(f"no model matches {pattern!r}", err=True)
        sys.exit(3)
    width = max(len(c.alias) for c in found)
    for cfg in found:
        click.echo(f"{cfg.alias:<{width}}  {cfg.source_name:<48} {cfg.description}")


@click.command("inspect")
@model_options
@click.option("--image", "images", multiple=True, type=click.Path(dir_okay=False), help="An image file (repeatable).")
@click.option("--images", "image_dir", type=click.Path(file_okay=False), default=None, callback=checked_image_dir,
              help="A folder of images.")
@click.option("--synthetic", is_flag=True, help="Use 8 generated images with flat regions and repeated tiles.")
@click.option("--photos", is_flag=True, help="Use the photos scikit-image ships.")
@out_option
@click.option("--plot", type=click.Path(dir_okay=False), default=None, help="PNG of tokens per block [default: OUT/tokens.png].")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None, help="JSON report [default: OUT/inspect.json].")
@click.option("--force", is_flag=True, help="Replace files that saint-export did not write.")
@reports_errors
def inspect_cmd(*, images, image_dir, synthetic, photos, out, plot, json_path, force, **opts) -> None:
    """Tokens per layer, r per pruning layer and FLOPs, dense vs SAINT, on one batch.

    With no input option, the scikit-image photos plus generated images are used.
    All inputs run as one batch (SAINT's r is the batch mean of the per-image votes).
    """

    echo_report(api.inspect(model_spec(opts), images, image_dir, synthetic=synthetic, photos=photos, out=out, plot=plot,
                            json=json_path, force=force))


COMMANDS = [list_cmd, inspect_cmd]
