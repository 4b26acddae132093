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

from ..errors import ConfigError, InputError, StageError
from ..io import check_writable, disk_errors, made_by_saint_export, staging_dir
from ..models.build import BuiltModel
from . import passes
from ..models.record import META_PREFIX
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


def output_folder(model_name: str, out: str | Path | None = None) -> Path:
    """``out``, or ``out/<alias>``: the tool's own folder for a model's files."""
    from ..models.registry import resolve

    return Path(out) if out else Path("out") / output_stem(resolve(model_name).alias)


def output_stem(alias: str) -> str:
    """An alias as one file or folder name (never a path: no separator, not '.' or '..')."""
    stem = alias.replace("/", "_").replace(os.sep, "_")
    return "_" * len(stem) if stem.strip(".") == "" else stem


def artifact_paths(model_name: str, out: str | Path | None = None, portable: str | Path | None = None,
                   tensorrt: str | Path | None = None, force: bool = False, suffix: str = "") -> tuple[Path, Path]:
    """Default paths ``OUT/<alias><suffix>.onnx`` and ``.trt.onnx`` beside it; both checked writable up front."""
    from ..models.registry import resolve

    stem = output_stem(resolve(model_name).alias) + suffix
    portable_path = Path(portable) if portable else output_folder(model_name, out) / f"{stem}.onnx"
    tensorrt_path = Path(tensorrt) if tensorrt else portable_path.with_name(portable_path.name.removesuffix(".onnx") + ".trt.onnx")
    check_targets([portable_path, tensorrt_path], force)
    return portable_path, tensorrt_path


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
        from .fp16 import ConvertFloat16

        progress("converting to float16 (SaintTokenDrop similarity stays float32)")
        run_passes(ConvertFloat16(), ir_model)
    ir_model.metadata_props[META_PREFIX + "precision"] = "fp16" if fp16 else "fp32"
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


def read_proto(path: Path):
    """The ModelProto of an ONNX file without its external data; InputError if unreadable."""
    import onnx

    try:
        return onnx.load(str(path), load_external_data=False)
    except Exception as exc:
        raise InputError(f"cannot read ONNX model {path}: {type(exc).__name__}") from None



ONNX_TYPES = {1: "FLOAT", 10: "HALF", 16: "BF16", 7: "INT64", 6: "INT32", 9: "BOOL"}


def graph_io(proto) -> list[dict]:
    """The graph's inputs and outputs as rows {name, shape (a symbolic dim reads -1), dtype, output}."""
    rows = []
    for values, output in ((proto.graph.input, False), (proto.graph.output, True)):
        for v in values:
            t = v.type.tensor_type
            shape = [d.dim_value if d.HasField("dim_value") else -1 for d in t.shape.dim]
            rows.append({"name": v.name, "shape": shape, "dtype": ONNX_TYPES.get(t.elem_type, str(t.elem_type)), "output": output})
    return rows
