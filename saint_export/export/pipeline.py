"""Stage ``onnx_models_from_torch``: trace once, run the clean-ups, write the portable and the
TensorRT-lowered model. Every file is written into a temporary folder beside its target and
moved into place only when all of them are complete."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import onnx_ir as ir
from onnx_ir.passes import InvariantError, PassError

from ..errors import ConfigError, InputError, OutputExistsError, StageError
from ..models import BuiltModel
from . import passes
from .trace import META_PREFIX, onnx_from_torch

EXTERNAL_DATA_THRESHOLD = 1_800_000_000  # protobuf cannot hold 2 GB; keep a margin


@dataclass
class ExportResult:
    portable: Path
    tensorrt: Path | None
    drop_nodes: int
    external_data: bool


def data_path(path: Path) -> Path:
    return path.with_name(path.name + ".data")


def initializer_bytes(model: ir.Model) -> int:
    return sum(v.const_value.nbytes for v in model.graph.initializers.values() if v.const_value is not None)


def run_passes(pipeline: ir.passes.PassBase, model: ir.Model) -> None:
    """Run ``pipeline``; a failing pass becomes StageError("passes", <the pass's own message>)."""
    try:
        pipeline(model)
    except (InvariantError, PassError) as exc:
        inner: BaseException = exc
        while inner.__cause__ is not None and isinstance(inner, PassError):
            inner = inner.__cause__  # Sequential wraps the failing pass's error
        if isinstance(inner, InvariantError) and inner.__cause__ is not None:
            msg = f"{inner} ({inner.__cause__})"
        else:
            msg = str(inner)
        raise StageError("passes", msg) from None


def _save(model: ir.Model, path: Path, external: bool) -> list[Path]:
    if external:
        ir.save(model, path, external_data=data_path(path).name)
        return [path, data_path(path)]
    ir.save(model, path)
    return [path]


def check_targets(paths: list[Path], force: bool) -> None:
    for p in paths:
        if p.exists() and not force:
            raise OutputExistsError(f"{p} already exists; pass --force to replace it")
        if p.exists() and p.is_dir():
            raise ConfigError(f"{p} is a directory")


def onnx_models_from_torch(
    built: BuiltModel,
    portable_path: Path,
    tensorrt_path: Path | None,
    batch: int = 2,
    opset: int = 18,
    pruned: bool = True,
    fp16: bool = False,
    force: bool = False,
    progress: Callable[[str], None] = lambda s: None,
) -> ExportResult:
    """Trace once; write the portable model and (unless ``tensorrt_path`` is None) the
    TensorRT-lowered one. Files appear only when every one of them is complete."""
    portable_path = Path(portable_path)
    tensorrt_path = Path(tensorrt_path) if tensorrt_path else None
    finals = [portable_path] + ([tensorrt_path] if tensorrt_path else [])
    if tensorrt_path is not None and tensorrt_path.resolve() == portable_path.resolve():
        raise ConfigError("the portable and the TensorRT model need different paths")
    check_targets(finals, force)
    progress("tracing with torch.onnx (dynamo)")
    model = onnx_from_torch(built, batch=batch, opset=opset, pruned=pruned)
    external = initializer_bytes(model) > EXTERNAL_DATA_THRESHOLD
    drops = len(passes.drop_nodes(model))
    progress("clean-up passes: constant folding, shape inference")
    run_passes(ir.passes.Sequential(*passes.cleanup()), model)
    if fp16:
        from .fp16 import ConvertFloat16

        progress("converting to float16 (SaintTokenDrop similarity stays float32)")
        run_passes(ConvertFloat16(), model)
    model.metadata_props[META_PREFIX + "precision"] = "fp16" if fp16 else "fp32"
    stagings: list[Path] = []
    staged: list[tuple[Path, Path]] = []  # (staged file, final file)
    try:
        for final, lowering in ((portable_path, passes.LowerPortable()), (tensorrt_path, passes.LowerTensorRT())):
            if final is None:
                continue
            progress(f"lowering: {type(lowering).__name__}")
            run_passes(ir.passes.Sequential(lowering, passes.CheckLowered()), model)
            final.parent.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".part", dir=final.parent))
            stagings.append(staging)
            progress(f"writing {final}")
            staged += [(f, final.parent / f.name) for f in _save(model, staging / final.name, external)]
        check_targets(finals, force)
        for tmp, final in staged:
            os.replace(tmp, final)
        if not external:  # a stale .data from an earlier large export would be misleading
            for final in finals:
                if data_path(final).exists() and force:
                    data_path(final).unlink()
    finally:
        for staging in stagings:
            shutil.rmtree(staging, ignore_errors=True)
    return ExportResult(portable_path, tensorrt_path, drops, external)


def schedule_from_metadata(meta: dict[str, str]) -> dict:
    """The exact schedule an ONNX file was exported with, as a config ``schedule:`` mapping."""
    rows = json.loads(meta.get("schedule", "[]"))
    if not rows:
        return {"layers": "none"}
    return {
        "layers": [row["layer"] for row in rows],
        "threshold": [row["threshold"] for row in rows],
        "k": [row["k"] for row in rows],
        "gamma": [row["gamma"] for row in rows],
        "fixed_r": [row["fixed_r"] for row in rows],
    }


def read_proto(path: Path):
    """The ModelProto of an ONNX file without its external data; InputError if unreadable."""
    import onnx

    try:
        return onnx.load(str(path), load_external_data=False)
    except Exception as exc:
        raise InputError(f"cannot read ONNX model {path}: {type(exc).__name__}") from None


def proto_metadata(proto) -> dict[str, str]:
    return {p.key[len(META_PREFIX):]: p.value for p in proto.metadata_props if p.key.startswith(META_PREFIX)}


def metadata_of(path: Path) -> dict[str, str]:
    """saint-export's metadata_props of an ONNX file (weights not loaded)."""
    return proto_metadata(read_proto(path))
