"""ONNX files as the whole package reads them: the ModelProto without external data, and the graph's
inputs and outputs as rows (the stages, the engine builder and Triton all need them)."""

from __future__ import annotations

from pathlib import Path

import onnx

from .errors import InputError


def read_proto(path: Path):
    """The ModelProto of an ONNX file without its external data; InputError if unreadable."""
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
