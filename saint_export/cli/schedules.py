"""``calibrate`` and ``tune``."""

from __future__ import annotations

import click

from .options import Number, Progress, build_from_options, force_option, images_option, model_options, out_option, reports_errors


def _search(opts, image_dir, out, force, names: tuple[str, str], search, write) -> None:
    """Check the three outputs (OUT/<alias>_<suffix>.yaml, OUT/<stem>.json, .png), build the model, run
    ``search(built, pixels) -> (report, schedule overrides)``, print the report, write the files."""
    from ..export.pipeline import output_folder, output_stem
    from ..inputs import gather_inputs
    from ..io import check_writable
    from ..models.registry import resolve

    folder = output_folder(opts["model_name"], out)
    suffix, stem = names
    alias = output_stem(resolve(opts["model_name"]).alias)
    paths = [folder / f"{alias}_{suffix}.yaml", folder / f"{stem}.json", folder / f"{stem}.png"]
    for path in paths:
        check_writable(path, force)
    built = build_from_options(opts)
    pixels, _ = gather_inputs(built.config, image_dir=image_dir)
    report, overrides = search(built, pixels)
    click.echo(report.table())
    write(*paths, built, report, overrides, force)
    click.echo(f"config: {paths[0]}\nreport: {paths[1]}\nplot: {paths[2]}")


@click.command("calibrate")
@model_options
@images_option
@click.option("--batch", type=click.IntRange(min=1), default=8, show_default=True, help="The deployment batch size.")
@click.option("--percentile", type=Number(0.0, 100.0), default=50.0, show_default=True,
              help="fixed_r per layer = this percentile of the r observed over the calibration batches.")
@out_option
@force_option
@reports_errors
def calibrate_cmd(image_dir, batch, percentile, out, force, **opts) -> None:
    """Freeze MODEL's dynamic schedule into static per-layer counts (fixed_r), measured on your images.

    Writes OUT/<alias>_calibrated.yaml (a config every command accepts as MODEL; its exports have
    static token dims), OUT/calibration.json and OUT/calibration.png, and prints dense / dynamic /
    calibrated static side by side: tokens per layer, FLOP ratio and fidelity against dense.
    """
    from ..schedules.calibrate import calibrate, write_calibration

    _search(opts, image_dir, out, force, ("calibrated", "calibration"),
            lambda built, pixels: calibrate(built, pixels, batch, percentile, Progress()), write_calibration)


@click.command("tune")
@model_options
@images_option
@click.option("--target-flops", type=Number(1.0, low_open=True), default=None, help="Reach at least this many x fewer FLOPs than dense.")
@click.option("--target-speedup", type=Number(1.0, low_open=True), default=None,
              help="The same, read as a speedup (SAINT's speedup tracks its FLOP ratio: see the README's benchmarks).")
@click.option("--holdout-every", type=click.IntRange(min=2), default=4, show_default=True,
              help="Every N-th image is held out and only used for the report.")
@out_option
@force_option
@reports_errors
def tune_cmd(image_dir, target_flops, target_speedup, holdout_every, out, force, **opts) -> None:
    """Search tau (one global value, then per layer) for the best fidelity to dense at a FLOP target.

    Prune which layers with --layers. Writes OUT/<alias>_tuned.yaml (a config every command accepts),
    OUT/tune.json and OUT/tune.png (fidelity against FLOP ratio, the config's default marked), and
    reports default / global / per-layer schedules on held-out images.
    """
    from ..errors import ConfigError
    from ..schedules.tune import tune, write_tuning

    if (target_flops is None) == (target_speedup is None):
        raise ConfigError("give exactly one of --target-flops and --target-speedup")
    _search(opts, image_dir, out, force, ("tuned", "tune"),
            lambda built, pixels: tune(built, pixels, target_flops if target_flops is not None else target_speedup, holdout_every, progress=Progress()),
            write_tuning)


COMMANDS = [calibrate_cmd, tune_cmd]
