"""The schedule searches: ``calibrate`` (freeze the dynamic schedule into static per-layer counts)
and ``tune`` (search tau for the best fidelity at a FLOP target). Each writes a config YAML every
command accepts as MODEL, a JSON report and a plot."""

from __future__ import annotations

from typing import Callable

from ..errors import ConfigError
from ..inputs import gather_inputs
from ..io import check_writable
from ..models.registry import resolve
from ..runtimes import registry
from ..schedules.calibrate import calibrate as calibrate_schedule
from ..schedules.calibrate import write_calibration
from ..schedules.static_tune import (
    FidelityTarget,
    SpeedTarget,
    split,
    tune_static,
    write_static_tuning,
)
from ..schedules.tune import tune as tune_schedule
from ..schedules.tune import write_tuning
from .options import ModelSpec, SearchOptions
from .paths import output_folder, output_stem
from .reports import FilesReport

Progress = Callable[[str], None]


def _silent(message: str) -> None:
    pass


def _search(model: ModelSpec, options: SearchOptions, names: tuple[str, str], search, write) -> FilesReport:
    """Check the three outputs (OUT/<alias>_<suffix>.yaml, OUT/<stem>.json, .png), build the model, run
    ``search(built, pixels) -> (report, schedule overrides)``, write the files."""
    folder = output_folder(model.name, options.out)
    suffix, stem = names
    alias = output_stem(resolve(model.name).alias)  # the YAML is named after the model, not the --out folder
    paths = [folder / f"{alias}_{suffix}.yaml", folder / f"{stem}.json", folder / f"{stem}.png"]
    for path in paths:
        check_writable(path, options.force)
    built = model.build()
    pixels, _ = gather_inputs(built.config, image_dir=options.images)
    report, overrides = search(built, pixels)
    write(tuple(paths), built, report, overrides, options.force)
    return FilesReport(report.table(), report.to_json(), dict(zip(("config", "report", "plot"), paths)))


def calibrate(model: ModelSpec, options: SearchOptions = SearchOptions(), progress: Progress = _silent) -> FilesReport:
    """fixed_r per layer = ``options.percentile`` of the r observed at ``options.batch`` on the images."""
    return _search(model, options, ("calibrated", "calibration"),
                   lambda built, pixels: calibrate_schedule(built, pixels, options.batch, options.percentile, progress),
                   write_calibration)


def tune(model: ModelSpec, options: SearchOptions, progress: Progress = _silent) -> FilesReport:
    """Static (default): fixed_r per block for the best fidelity at ``options.target_flops`` or at a
    speed ``options.target_speedup`` measured on ``options.backend`` at ``options.batch``. Dynamic
    (``options.dynamic``): tau, one global value then per layer, at a FLOP target. Both are searched on
    the tuning images and reported on held-out ones (every ``holdout_every``-th, or ``holdout``)."""
    if (options.target_flops is None) == (options.target_speedup is None):
        raise ConfigError("give exactly one of --target-flops and --target-speedup")
    if options.dynamic and options.target_speedup is not None:
        raise ConfigError("--target-speedup is measured on static token counts; drop --dynamic (or give --target-flops)")
    speed = None
    if options.target_speedup is not None:
        runtime = registry.get(options.backend, options.device)
        runtime.require()
        speed = SpeedTarget(runtime, options.batch, options.device)
    if options.dynamic:
        return _search(model, options, ("tuned", "tune"), lambda built, pixels: tune_schedule(
            built, pixels, options.target_flops, holdout_every=options.holdout_every, progress=progress), write_tuning)
    fidelity = FidelityTarget(options.min_cosine, options.min_worst_cosine)
    target = options.target_flops or options.target_speedup

    def search(built, pixels):
        tuning, held = _tuning_and_held(built, pixels, options)
        blocks = built.schedule.layers if model.layers is not None else None
        return tune_static(built, tuning, held, target, blocks=blocks, speed=speed, fidelity=fidelity, progress=progress)

    return _search(model, options, ("tuned", "tune"), search, write_static_tuning)


def _tuning_and_held(built, pixels, options: SearchOptions):
    """The search's images and the held-out ones: a folder (``options.holdout``) or every N-th image."""
    if options.holdout:
        held, _ = gather_inputs(built.config, image_dir=options.holdout)
        return pixels, held
    if pixels.shape[0] < 2:
        raise ConfigError("tune needs at least 2 images (some are held out), or --holdout DIR")
    tuning, held = split(int(pixels.shape[0]), options.holdout_every)
    return pixels[tuning], pixels[held]
