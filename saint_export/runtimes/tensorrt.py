"""TensorRT: a ``.plan`` built from the TensorRT-lowered model with the SaintTokenDrop plugin, run
through Polygraphy's TrtRunner (``saint_export.tensorrt.engine``). Needs TensorRT and a GPU."""

from __future__ import annotations

from pathlib import Path

from ..tensorrt.engine import (
    EngineOptions,
    activate,
    engine_from_onnx,
    engine_runner,
    require_tensorrt,
)
from .base import Artifacts, Runtime


def trt_runner(plan: Path, device: str = "cuda", extra_outputs: tuple[str, ...] = (), name: str = "tensorrt"):
    """Polygraphy's TrtRunner over the engine (its outputs are the engine's: ``extra_outputs`` must be among them)."""
    return engine_runner(Path(plan), name=name)


def _artifact(artifacts: Artifacts, variant: str, max_batch: int) -> Path:
    plan = artifacts.folder / f"{variant}.plan"
    return engine_from_onnx(artifacts.lowered(variant), plan, EngineOptions(batch=(1, max_batch, max_batch)))


def _require() -> None:
    require_tensorrt(onnx_written=False)


RUNTIME = Runtime("tensorrt", "trt", ".plan", trt_runner, lambda device: "TensorRT", require=_require, artifact=_artifact,
                  activate=activate)
