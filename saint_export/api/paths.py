"""Where outputs go when the user does not say: ``out/<alias>/``, named after the model."""

from __future__ import annotations

import os
from pathlib import Path

from ..export.pipeline import check_targets
from ..models.registry import resolve


def output_stem(alias: str) -> str:
    """An alias as one file or folder name (never a path: no separator, not '.' or '..')."""
    stem = alias.replace("/", "_").replace(os.sep, "_")
    return "_" * len(stem) if stem.strip(".") == "" else stem


def output_folder(model_name: str, out: str | Path | None = None) -> Path:
    """``out``, or ``out/<alias>``: the tool's own folder for a model's files."""
    return Path(out) if out else Path("out") / output_stem(resolve(model_name).alias)


def artifact_paths(model_name: str, out: str | Path | None = None, portable: str | Path | None = None,
                   tensorrt: str | Path | None = None, force: bool = False, suffix: str = "") -> tuple[Path, Path]:
    """Default paths ``OUT/<alias><suffix>.onnx`` and ``.trt.onnx`` beside it; both checked writable up front."""
    stem = output_stem(resolve(model_name).alias) + suffix
    portable_path = Path(portable) if portable else output_folder(model_name, out) / f"{stem}.onnx"
    tensorrt_path = Path(tensorrt) if tensorrt else portable_path.with_name(portable_path.name.removesuffix(".onnx") + ".trt.onnx")
    check_targets([portable_path, tensorrt_path], force)
    return portable_path, tensorrt_path
