"""What the API's jobs return: each report prints as the command's table (``table()``), serialises as
the JSON the command writes (``to_json()``) and carries the command's exit code (``exit_code``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class ExportReport:
    portable: Path
    tensorrt: Path | None
    drop_nodes: int
    schedule: str  # one line: the schedule, or the vision encoder's pruning
    plugin_note: str = "needs libsaint_plugins.so"
    exit_code: int = 0

    def table(self) -> str:
        return "\n".join([f"portable ONNX (onnxruntime, any runtime): {self.portable}",
                          f"TensorRT-lowered ONNX ({self.plugin_note}): {self.tensorrt}", self.schedule])

    def to_json(self) -> dict[str, Any]:
        return {"portable": str(self.portable), "tensorrt": str(self.tensorrt) if self.tensorrt else None,
                "drop_nodes": self.drop_nodes, "schedule": self.schedule}


@dataclass
class ValidateReport:
    """A validation (``verify.validate.ValidationReport`` or, for a LLaVA vision encoder,
    ``verify.vision.VisionReport``) with the files written beside it."""

    validation: Any
    json: Path | None = None
    polygraphy: str | None = None  # the 'polygraphy run' line for the data written

    @property
    def passed(self) -> bool:
        return bool(self.validation.passed)

    @property
    def exit_code(self) -> int:
        return 0 if self.passed else 1

    def table(self) -> str:
        lines = [self.validation.table()]
        if self.polygraphy:
            lines.append(self.polygraphy)
        if self.json:
            lines.append(f"report: {self.json}")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return self.validation.to_json()


@dataclass
class EngineReport:
    plan: Path
    exit_code: int = 0

    def table(self) -> str:
        return f"engine: {self.plan} (sidecar {self.plan}.json)"

    def to_json(self) -> dict[str, Any]:
        return {"plan": str(self.plan), "sidecar": f"{self.plan}.json"}


@dataclass
class RunReport:
    """The main job: export, validation, and the engine when one was asked for."""

    export: ExportReport
    validate: ValidateReport
    engine: EngineReport | None = None

    @property
    def passed(self) -> bool:
        return self.validate.passed

    @property
    def exit_code(self) -> int:
        return self.validate.exit_code

    def table(self) -> str:
        return "\n".join([self.export.table(), self.validate.table()] + ([self.engine.table()] if self.engine else []))

    def to_json(self) -> dict[str, Any]:
        return {"export": self.export.to_json(), "validation": self.validate.to_json(),
                **({"engine": self.engine.to_json()} if self.engine else {})}


@dataclass
class FilesReport:
    """A job whose result is a printed table and files written (check, bench, calibrate, tune, inspect, triton)."""

    text: str
    data: dict[str, Any] = field(default_factory=dict)  # what the JSON report holds
    files: dict[str, Path] = field(default_factory=dict)  # label -> path, printed as "label: path"
    passed: bool = True

    @property
    def exit_code(self) -> int:
        return 0 if self.passed else 1

    def table(self) -> str:
        return "\n".join([self.text] + [f"{label}: {path}" for label, path in self.files.items()]).strip("\n")

    def to_json(self) -> dict[str, Any]:
        return self.data
