"""``calibrate`` and ``tune``: arguments parsed into the API's options, one API call, its report printed."""

from __future__ import annotations

import click

from .. import api
from ..runtimes import registry
from .options import (
    Number,
    Progress,
    device_option,
    echo_report,
    force_option,
    images_option,
    model_options,
    model_spec,
    out_option,
    reports_errors,
)


@click.command("calibrate")
@model_options
@images_option
@click.option("--batch", type=click.IntRange(min=1), default=8, show_default=True, help="The deployment batch size.")
@click.option("--percentile", type=Number(0.0, 100.0), default=50.0, show_default=True,
              help="fixed_r per layer = this percentile of the r observed over the calibration batches.")
@out_option
@force_option
@reports_errors
def calibrate_cmd(*, image_dir, batch, percentile, out, force, **opts) -> None:
    """Freeze MODEL's dynamic schedule into static per-layer counts (fixed_r), measured on your images.

    Writes OUT/<alias>_calibrated.yaml (a config every command accepts as MODEL; its exports have
    static token dims), OUT/calibration.json and OUT/calibration.png, and prints dense / dynamic /
    calibrated static side by side: tokens per layer, FLOP ratio and fidelity against dense.
    """

    options = api.SearchOptions(image_dir, out, force, batch=batch, percentile=percentile)
    echo_report(api.calibrate(model_spec(opts), options, Progress()))


@click.command("tune")
@model_options
@images_option
@click.option("--target-flops", type=Number(1.0, low_open=True), default=None, help="Reach at least this many x fewer FLOPs than dense.")
@click.option("--target-speedup", type=Number(1.0, low_open=True), default=None,
              help="Reach this many x faster than dense, measured on --backend at --batch (static search only).")
@click.option("--static/--dynamic", "static", default=True, show_default=True,
              help="Search fixed_r per block (static token counts), or tau (data-dependent counts).")
@click.option("--backend", type=click.Choice(registry.short_names()), default="ort", show_default=True,
              help="Where --target-speedup is measured.")
@click.option("--batch", type=click.IntRange(min=1), default=1, show_default=True, help="The deployment batch size (--target-speedup).")
@click.option("--holdout-every", type=click.IntRange(min=2), default=4, show_default=True,
              help="Every N-th image is held out of the search and only used for the report.")
@click.option("--holdout", type=click.Path(file_okay=False), default=None, help="A folder of held-out images instead.")
@click.option("--min-cosine", type=Number(-1.0, 1.0), default=None, help="Held-out mean cosine to dense the schedule should keep (reported).")
@click.option("--min-worst-cosine", type=Number(-1.0, 1.0), default=None, help="Held-out worst-image cosine it should keep (reported).")
@device_option
@out_option
@force_option
@reports_errors
def tune_cmd(*, image_dir, target_flops, target_speedup, static, backend, batch, holdout_every, holdout, min_cosine,
             min_worst_cosine, device, out, force, **opts) -> None:
    """Search a schedule for the best fidelity to dense at a cost target, reported on held-out images.

    Static (default): fixed_r per block (all blocks may prune unless --layers says which), for
    --target-flops, or for --target-speedup measured on --backend at --batch (a per-block latency
    table predicts, the tuned schedule is then timed against dense). --dynamic: tau, one global value
    then per layer, for --target-flops. Writes OUT/<alias>_tuned.yaml (a config every command
    accepts), OUT/tune.json and OUT/tune.png.
    """
    options = api.SearchOptions(image_dir, out, force, batch=batch, target_flops=target_flops, target_speedup=target_speedup,
                                holdout_every=holdout_every, holdout=holdout, dynamic=not static, backend=backend, device=device,
                                min_cosine=min_cosine, min_worst_cosine=min_worst_cosine)
    echo_report(api.tune(model_spec(opts), options, Progress()))


COMMANDS = [calibrate_cmd, tune_cmd]
