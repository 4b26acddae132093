"""One exception base class; each subclass carries the CLI exit code it maps to.

Exit codes (also listed in the README and in ``saint-export --help``):

====  =============================================================
0     success
1     a check or validation ran and FAILED (parity outside tolerance)
2     command-line usage error (click)
3     configuration error: unknown model, bad YAML field, bad value
4     unreadable input (image, checkpoint, ONNX file, directory) or unwritable output
5     missing dependency or resource: network/hub, TensorRT, GPU
6     output already exists (use --force to replace it)
7     a pipeline stage failed (export, a graph pass, engine build)
====  =============================================================
"""

from __future__ import annotations


class SaintExportError(Exception):
    """Base class of every error the toolkit reports as a one-line message."""

    exit_code = 1


# one class per exit code; the meaning of each is EXIT_CODES below
class UsageError(SaintExportError): exit_code = 2  # noqa: E701
class ConfigError(SaintExportError): exit_code = 3  # noqa: E701
class InputError(SaintExportError): exit_code = 4  # noqa: E701
class MissingDependencyError(SaintExportError): exit_code = 5  # noqa: E701
class OutputExistsError(SaintExportError): exit_code = 6  # noqa: E701


class StageError(SaintExportError):
    """A pipeline stage (trace, a named graph pass, engine build) failed."""

    exit_code = 7

    def __init__(self, stage: str, message: str):
        super().__init__(f"{stage}: {message}")
        self.stage = stage


EXIT_CODES = {
    0: "success",
    1: "check/validation failed",
    2: "usage error",
    3: "configuration error (model, YAML field, parameter range)",
    4: "unreadable input or unwritable output (image, checkpoint, ONNX, directory)",
    5: "missing dependency (network, TensorRT, GPU, package)",
    6: "output exists (use --force)",
    7: "pipeline stage failed (export, pass, engine build)",
}
