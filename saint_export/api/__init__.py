"""saint-export's Python API: one call per job, typed options in, a report out (``table()`` is what
the command prints, ``to_json()`` what it writes, ``exit_code`` what it exits with). The command line
only parses arguments into these options.

    from saint_export import api

    report = api.run(api.ModelSpec("vit_t16"), api.ExportOptions(out="out/vit_t16"))
    print(report.table())
"""

from .deploy import triton_repository
from .options import (
    ArtifactSpec,
    BenchOptions,
    CheckOptions,
    EngineRequest,
    ExportOptions,
    ModelSpec,
    SearchOptions,
    TritonOptions,
    ValidateOptions,
)
from .pipeline import build_engine, export, run, validate
from .schedules import calibrate, tune
from .serve import ServeOptions, serve
from .verify import bench, check, inspect

__all__ = ["export", "validate", "build_engine", "run", "check", "bench", "inspect", "calibrate", "tune", "triton_repository", "serve",
           "ServeOptions",
           "ModelSpec", "ArtifactSpec", "ExportOptions", "ValidateOptions", "EngineRequest", "CheckOptions", "BenchOptions",
           "SearchOptions", "TritonOptions"]
