"""``calibrate`` and ``tune``: arguments parsed into the API's options, one API call, its report printed."""

from __future__ import annotations

import click

from .. import api
from ..errors import ConfigError
from .options import Progress, echo_report, force_option, images_option, model_options, model_spec, out_option, reports_errors


@click.command("calibrate")
@model_options
@images_option
@click.option("--batch", type=click.IntRange(min=1), default=8, show_default=True, help="The deployment batch size.")
@click.option("--percentile", type=float, default=50.0, show_default=True,
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
@click.option("--target-flops", type=float, default=None, help="Reach at least this many x fewer FLOPs than dense.")
@click.option("--target-speedup", type=float, default=None,
              help="The same, read as a speedup (SAINT's speedup tracks its FLOP ratio: see the README's benchmarks).")
@click.option("--holdout-every", type=click.IntRange(min=2), default=4, show_default=True,
              help="Every N-th image is held out and only used for the report.")
@out_option
@force_option
@reports_errors
def tune_cmd(*, image_dir, target_flops, target_speedup, holdout_every, out, force, **opts) -> None:
    """Search tau (one global value, then per layer) for the best fidelity to dense at a FLOP target.

    Prune which layers with --layers. Writes OUT/<alias>_tuned.yaml (a config every command accepts),
    OUT/tune.json and OUT/tune.png (fidelity against FLOP ratio, the config's default marked), and
    reports default / global / per-layer schedules on held-out images.
    """

    if (target_flops is None) == (target_speedup is None):
        raise ConfigError("give exactly one of --target-flops and --target-speedup")
    options = api.SearchOptions(image_dir, out, force, target_flops=target_flops or target_speedup, holdout_every=holdout_every)
    echo_report(api.tune(model_spec(opts), options, Progress()))


COMMANDS = [calibrate_cmd, tune_cmd]
