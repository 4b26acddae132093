"""The schedule searches: ``calibrate`` (freeze the dynamic schedule into static per-layer counts)
and ``tune`` (search tau for the best fidelity at a FLOP target). Each writes a config YAML every
command accepts as MODEL, a JSON report and a plot."""

from __future__ import annotations

from typing import Callable

from ..errors import ConfigError
from ..inputs import gather_inputs
from ..io import check_writable
from ..schedules.calibrate import calibrate as calibrate_schedule
from ..schedules.calibrate import write_calibration
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
    paths = [folder / f"{output_stem(folder.name)}_{suffix}.yaml", folder / f"{stem}.json", folder / f"{stem}.png"]
    for path in paths:
        check_writable(path, options.force)
    built = model.build()
    pixels, _ = gather_inputs(built.config, image_dir=options.images)
    report, overrides = search(built, pixels)
    write(*paths, built, report, overrides, options.force)
    return FilesReport(report.table(), report.to_json(), dict(zip(("config", "report", "plot"), paths)))


def calibrate(model: ModelSpec, options: SearchOptions = SearchOptions(), progress: Progress = _silent) -> FilesReport:
    """fixed_r per layer = ``options.percentile`` of the r observed at ``options.batch`` on the images."""
    return _search(model, options, ("calibrated", "calibration"),
                   lambda built, pixels: calibrate_schedule(built, pixels, options.batch, options.percentile, progress),
                   write_calibration)


def tune(model: ModelSpec, options: SearchOptions, progress: Progress = _silent) -> FilesReport:
    """tau (one global value, then per layer) for the best fidelity to dense at ``options.target_flops``,
    reported on every ``options.holdout_every``-th image, held out of the search."""
    if options.target_flops is None:
        raise ConfigError("give exactly one of --target-flops and --target-speedup")
    return _search(model, options, ("tuned", "tune"),
                   lambda built, pixels: tune_schedule(built, pixels, options.target_flops, options.holdout_every, progress=progress),
                   write_tuning)
