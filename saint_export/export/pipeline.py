"""Stage ``onnx_models_from_torch``: trace once, run the clean-ups, write the portable and the
TensorRT-lowered model. Every file is written into a temporary folder beside its target and
moved into place only when all of them are complete."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import onnx_ir as ir
from onnx_ir.passes import InvariantError, PassError

from ..errors import ConfigError, StageError
from ..io import check_writable, disk_errors, made_by_saint_export, staging_dir
from ..models.build import BuiltModel
from ..models.record import metadata_entries
from . import passes
from .fp16 import ConvertFloat16
from .trace import onnx_from_torch

EXTERNAL_DATA_THRESHOLD = 1_800_000_000  # protobuf cannot hold 2 GB; keep a margin


@dataclass
class ExportResult:
    portable: Path
    tensorrt: Path | None
    drop_nodes: int
    external_data: bool


def data_path(path: Path) -> Path:
    return path.with_name(path.name + ".data")


def initializer_bytes(ir_model: ir.Model) -> int:
    return sum(v.const_value.nbytes for v in ir_model.graph.initializers.values() if v.const_value is not None)


def run_passes(pipeline: ir.passes.PassBase, ir_model: ir.Model) -> None:
    """Run ``pipeline``; a failing pass becomes StageError("passes", <the pass's own message>)."""
    try:
        pipeline(ir_model)
    except (InvariantError, PassError) as exc:
        inner: BaseException = exc
        while inner.__cause__ is not None and isinstance(inner, PassError):
            inner = inner.__cause__  # Sequential wraps the failing pass's error
        if isinstance(inner, InvariantError) and inner.__cause__ is not None:
            msg = f"{inner} ({inner.__cause__})"
        else:
            msg = str(inner)
        raise StageError("passes", msg) from None


def _save(ir_model: ir.Model, path: Path, external: bool) -> list[Path]:
    if external:
        ir.save(ir_model, path, external_data=data_path(path).name)
        return [path, data_path(path)]
    ir.save(ir_model, path)
    return [path]


def check_targets(paths: list[Path], force: bool) -> None:
    for path in paths:
        check_writable(path, force)


def onnx_models_from_torch(
    built: BuiltModel,
    portable_path: Path,
    tensorrt_path: Path | None,
    *,
    batch: int = 2,
    opset: int = 18,
    pruned: bool = True,
    fp16: bool = False,
    force: bool = False,
    progress: Callable[[str], None] = lambda s: None,
) -> ExportResult:
    """Trace once; write the portable model and (unless ``tensorrt_path`` is None) the
    TensorRT-lowered one. Files appear only when every one of them is complete."""
    portable_path, tensorrt_path = checked_targets(portable_path, tensorrt_path, force)
    progress("tracing with torch.onnx (dynamo)")
    ir_model = onnx_from_torch(built, batch=batch, opset=opset, pruned=pruned)
    return write_lowered(ir_model, portable_path, tensorrt_path, fp16, force, progress)


def checked_targets(portable_path: Path, tensorrt_path: Path | None, force: bool) -> tuple[Path, Path | None]:
    """The two artifact paths, checked writable (before minutes of tracing) and distinct."""
    portable_path = Path(portable_path)
    tensorrt_path = Path(tensorrt_path) if tensorrt_path else None
    if tensorrt_path is not None and tensorrt_path.resolve() == portable_path.resolve():
        raise ConfigError("the portable and the TensorRT model need different paths")
    check_targets([portable_path] + ([tensorrt_path] if tensorrt_path else []), force)
    return portable_path, tensorrt_path


def write_lowered(ir_model: ir.Model, portable_path: Path, tensorrt_path: Path | None, fp16: bool = False,
                  force: bool = False, progress: Callable[[str], None] = lambda s: None) -> ExportResult:
    """Clean up a traced model, lower it both ways and write the portable model and (unless
    ``tensorrt_path`` is None) the TensorRT-lowered one; files appear only when all are complete."""
    portable_path, tensorrt_path = checked_targets(portable_path, tensorrt_path, force)
    finals = [portable_path] + ([tensorrt_path] if tensorrt_path else [])
    external = initializer_bytes(ir_model) > EXTERNAL_DATA_THRESHOLD
    drops = len(passes.drop_nodes(ir_model))
    progress("clean-up passes: constant folding, shape inference")
    run_passes(ir.passes.Sequential(*passes.cleanup()), ir_model)
    if fp16:
        progress("converting to float16 (SaintTokenDrop similarity stays float32)")
        run_passes(ConvertFloat16(), ir_model)
    ir_model.metadata_props.update(metadata_entries(precision="fp16" if fp16 else "fp32"))
    staged: list[tuple[Path, Path]] = []  # (staged file, final file)
    with contextlib.ExitStack() as stagings:  # each staging folder is removed on the way out, whatever happened
        for final, lowering in ((portable_path, passes.LowerPortable()), (tensorrt_path, passes.LowerTensorRT())):
            if final is None:
                continue
            progress(f"lowering: {type(lowering).__name__}")
            run_passes(ir.passes.Sequential(lowering, passes.CheckLowered()), ir_model)
            staging = stagings.enter_context(staging_dir(final))
            progress(f"writing {final}")
            with disk_errors(final):
                staged += [(f, final.parent / f.name) for f in _save(ir_model, staging / final.name, external)]
        check_targets(finals, force)
        with disk_errors(portable_path.parent):
            for tmp, final in staged:
                os.replace(tmp, final)
            if not external:  # a stale .data from an earlier large export would be misleading
                for final in finals:
                    if data_path(final).exists() and (force or made_by_saint_export(data_path(final))):
                        data_path(final).unlink()
    return ExportResult(portable_path, tensorrt_path, drops, external)
