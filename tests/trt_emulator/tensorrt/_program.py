"""What the emulated engine is: an ONNX graph whose plugin nodes are real IPluginV3 objects of a
plugin library (created through its creator, with the fields onnx-tensorrt's fallback importer
passes), built through the plugin's build-phase methods with the header contracts checked, and run
with onnxruntime for the standard ops between plugin nodes and each plugin's ``enqueue`` (the
kernels on the CPU runtime) for the plugin nodes. Nothing here knows what SaintTokenDrop computes.
"""

from __future__ import annotations

import base64
import ctypes
import json
import struct
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx

from . import _native
from ._enums import DataType, PluginFieldType

MAGIC = b"SAINT-EMULATED-TRT-PLAN\0"
ONNX_TO_TRT = {1: "FLOAT", 10: "HALF", 16: "BF16", 6: "INT32", 7: "INT64", 9: "BOOL", 2: "UINT8", 3: "INT8"}
TRT_TO_ONNX = {v: k for k, v in ONNX_TO_TRT.items()}


def numpy_dtype(trt_name: str):
    if trt_name == "BF16":
        import ml_dtypes

        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype({"FLOAT": np.float32, "HALF": np.float16, "INT32": np.int32, "INT64": np.int64, "BOOL": np.bool_,
                     "UINT8": np.uint8, "INT8": np.int8}[trt_name])


class BuildError(RuntimeError):
    """A failed build or parse: the emulated builder logs it and returns None, as TensorRT does."""


# ---- dimension expressions (the JSON the native half gives for getOutputShapes) ----

_OPS = {"sum": lambda a, b: a + b, "prod": lambda a, b: a * b, "max": max, "min": min, "sub": lambda a, b: a - b,
        "eq": lambda a, b: int(a == b), "less": lambda a, b: int(a < b), "floordiv": lambda a, b: a // b,
        "ceildiv": lambda a, b: -((-a) // b)}


def evaluate(expr, symbols: dict[str, int], sizes: dict[int, int]) -> int:
    if isinstance(expr, int):
        return expr
    if isinstance(expr, str):
        return symbols[expr]
    if isinstance(expr, dict):
        return sizes[expr["size"]]
    op, a, b = expr
    return _OPS[op](evaluate(a, symbols, sizes), evaluate(b, symbols, sizes))


def mentions(expr, names: set[str]) -> bool:
    """Does ``expr`` reference a size tensor or one of ``names``."""
    if isinstance(expr, str):
        return expr in names
    if isinstance(expr, dict):
        return True
    if isinstance(expr, list):
        return mentions(expr[1], names) or mentions(expr[2], names)
    return False


@dataclass
class Symbol:
    lo: int
    opt: int
    hi: int
    size_derived: bool = False


@dataclass
class PluginNode:
    """One plugin layer: where it sits in the graph, its creator's key, and its build phase."""

    index: int
    name: str
    key: tuple[str, str, str]
    inputs: list[str]
    outputs: list[str]
    handle: int | None = None  # the build-phase plugin (IPluginV3*), owned by the network
    fields: list = field(default_factory=list)  # getFieldsToSerialize at build time
    build: dict = field(default_factory=dict)
    in_types: list[str] = field(default_factory=list)  # the plugin's I/O types (may differ from the graph's)
    out_types: list[str] = field(default_factory=list)
    graph_in_types: list[str] = field(default_factory=list)  # the graph's types (a reformat between)
    graph_out_types: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"index": self.index, "name": self.name, "key": list(self.key), "inputs": self.inputs,
                "outputs": self.outputs, "fields": self.fields, "build": self.build, "in_types": self.in_types,
                "out_types": self.out_types, "graph_in_types": self.graph_in_types,
                "graph_out_types": self.graph_out_types}


def shapes_of(model: onnx.ModelProto) -> dict[str, tuple[str, list]]:
    """name -> (TensorRT type name, dims: int or dim_param str or None) from inputs, value_info and outputs."""
    out = {}
    for v in list(model.graph.input) + list(model.graph.value_info) + list(model.graph.output):
        t = v.type.tensor_type
        if not t.elem_type:
            continue
        dims = [d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in t.shape.dim]
        out[v.name] = (ONNX_TO_TRT.get(t.elem_type, f"onnx:{t.elem_type}"), dims)
    return out


# ---- the build phase ----

def plugin_build(node: PluginNode, in_specs: list[tuple[str, list]], symbols: dict[str, Symbol]) -> dict:
    """Call the plugin's build phase for inputs (type, dims: int or symbol name). Raises BuildError."""
    lib = _native.lib()
    names = sorted({d for _, dims in in_specs for d in dims if isinstance(d, str)})
    index = {n: i for i, n in enumerate(names)}
    dims_flat = []
    for _, dims in in_specs:
        row = [(d if isinstance(d, int) else -(index[d] + 1)) for d in dims]
        dims_flat += row + [0] * (_native.MAX_DIMS - len(row))
    sym = [symbols[n] for n in names]
    raw = lib.emu_plugin_build(
        node.handle, len(in_specs), _native.array(ctypes.c_int32, [DataType.__members__[t].value for t, _ in in_specs]),
        _native.array(ctypes.c_int32, [len(d) for _, d in in_specs]), _native.array(ctypes.c_int64, dims_flat), len(names),
        _native.array(ctypes.c_char_p, [n.encode() for n in names]), _native.array(ctypes.c_int64, [s.lo for s in sym]),
        _native.array(ctypes.c_int64, [s.opt for s in sym]), _native.array(ctypes.c_int64, [s.hi for s in sym]),
        _native.array(ctypes.c_int32, [int(s.size_derived) for s in sym]))
    try:
        return _native.answer(raw)
    except RuntimeError as exc:
        raise BuildError(f"plugin layer {node.name}: {exc}") from None


def plugin_fields(handle: int) -> list:
    return _native.answer(_native.lib().emu_plugin_fields(handle))["fields"]


def output_symbols(node: PluginNode, result: dict, out_dims: list[list | None], symbols: dict[str, Symbol]) -> None:
    """Bind the graph's names for the plugin's output dims (dim_params) to the plugin's expressions;
    a static graph dim must equal the plugin's."""
    lo = {k: v.lo for k, v in symbols.items()}
    opt = {k: v.opt for k, v in symbols.items()}
    hi = {k: v.hi for k, v in symbols.items()}
    size_opt = {i: evaluate(o, opt, {}) for i, o, _ in result["size_tensors"]}
    size_hi = {i: evaluate(u, hi, {}) for i, _, u in result["size_tensors"]}
    derived = {k for k, v in symbols.items() if v.size_derived}
    if len(out_dims) != len(result["outputs"]):  # onnx-tensorrt maps node outputs to plugin outputs by position
        raise BuildError(f"plugin layer {node.name}: the node has {len(out_dims)} outputs, the plugin declares "
                         f"{len(result['outputs'])} (tokens, kept_index, [mask_out], [size tensor], in that order)")
    for i, (rank, exprs) in enumerate(result["outputs"]):
        dims = out_dims[i]
        if dims is None:
            continue
        if len(dims) != rank:
            raise BuildError(f"plugin layer {node.name}: output {i} has rank {rank}, the graph says {len(dims)}")
        for axis, (graph_dim, expr) in enumerate(zip(dims, exprs)):
            if isinstance(graph_dim, int):
                if mentions(expr, derived) or evaluate(expr, hi, size_hi) != graph_dim:
                    raise BuildError(f"plugin layer {node.name}: output {i} dim {axis} is {expr}, the graph says {graph_dim}")
            elif isinstance(graph_dim, str) and graph_dim not in symbols:
                symbols[graph_dim] = Symbol(evaluate(expr, lo, {k: 0 for k in size_hi}), evaluate(expr, opt, size_opt),
                                            evaluate(expr, hi, size_hi), mentions(expr, derived))


# ---- running ----

class Segment:
    """Standard ONNX nodes between two plugin nodes, run by onnxruntime."""

    def __init__(self, model: onnx.ModelProto, nodes: list, inputs: list[str], outputs: list[str]):
        self.model, self.nodes, self.inputs, self.outputs = model, nodes, inputs, outputs
        self.sessions: dict[tuple, Any] = {}

    def run(self, env: dict[str, np.ndarray]) -> None:
        if not self.nodes:
            return
        key = tuple(env[n].dtype.str for n in self.inputs)
        if key not in self.sessions:
            self.sessions[key] = self._session(env)
        outs = self.sessions[key].run(self.outputs, {n: env[n] for n in self.inputs})
        env.update(zip(self.outputs, outs))

    def _session(self, env):
        import onnxruntime as ort

        g = self.model.graph
        used = {i for n in self.nodes for i in n.input}
        inits = [t for t in g.initializer if t.name in used]
        init_names = {t.name for t in inits}
        known = {v.name: v for v in list(g.value_info) + list(g.output)}
        inputs = [onnx.helper.make_tensor_value_info(n, onnx.helper.np_dtype_to_tensor_dtype(env[n].dtype),
                                                     [f"d{k}" for k in range(env[n].ndim)]) for n in self.inputs
                  if n not in init_names]
        outputs = [known[n] if n in known else onnx.helper.make_empty_tensor_value_info(n) for n in self.outputs]
        graph = onnx.helper.make_graph(self.nodes, "segment", inputs, outputs, inits)
        model = onnx.helper.make_model(graph, opset_imports=self.model.opset_import, ir_version=self.model.ir_version)
        model.functions.extend(self.model.functions)
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def segments(model: onnx.ModelProto, plugin_index: set[int]) -> list[Segment]:
    """The standard nodes split at the plugin nodes (graph order is topological)."""
    g = model.graph
    groups, current = [], []
    for i, node in enumerate(g.node):
        if i in plugin_index:
            groups.append(current)
            current = []
        else:
            current.append(node)
    groups.append(current)
    inits = {t.name for t in g.initializer}
    out = []
    for k, nodes in enumerate(groups):
        produced = {o for n in nodes for o in n.output if o}
        later = {i for group in groups[k + 1:] for n in group for i in n.input} | {o.name for o in g.output}
        later |= {i for j in plugin_index for i in g.node[j].input}
        needed = []
        for n in nodes:
            for i in n.input:
                if i and i not in produced and i not in needed:
                    needed.append(i)
        outputs = [o for n in nodes for o in n.output if o and o in later]
        out.append(Segment(model, nodes, [i for i in needed if i not in inits], outputs))  # initializers stay inside
    return out


def enqueue(handle: int, node: PluginNode, env: dict[str, np.ndarray], symbols: dict[str, int]) -> dict[str, int]:
    """Run one plugin node: outputs at their upper bounds, enqueue, then the size tensors' values give
    the real shapes. Returns {output index: size tensor value}."""
    lib = _native.lib()
    ins = []
    for name, t in zip(node.inputs, node.in_types):
        arr = np.ascontiguousarray(env[name])
        want = numpy_dtype(t)
        ins.append(arr if arr.dtype == want else np.ascontiguousarray(arr.astype(want)))  # a reformat layer
    sizes_upper = {i: evaluate(u, symbols, {}) for i, _, u in node.build["size_tensors"]}
    outs = []
    for (rank, exprs), t in zip(node.build["outputs"], node.out_types):
        shape = [evaluate(e, symbols, sizes_upper) for e in exprs]
        outs.append(np.zeros(shape, numpy_dtype(t)))
    workspace_bytes = int(node.build["workspace"])
    workspace = np.zeros(workspace_bytes + lib.emu_workspace_guard_bytes() + 256, np.uint8)
    base = (workspace.ctypes.data + 255) // 256 * 256
    tensors = ins + outs
    dims = []
    for a in tensors:
        dims += list(a.shape) + [0] * (_native.MAX_DIMS - a.ndim)
    types = [DataType.__members__[t].value for t in node.in_types + node.out_types]
    raw = lib.emu_plugin_enqueue(handle, len(ins), len(outs), _native.array(ctypes.c_int32, types),
                                 _native.array(ctypes.c_int32, [a.ndim for a in tensors]), _native.array(ctypes.c_int64, dims),
                                 _native.array(ctypes.c_void_p, [a.ctypes.data for a in ins]),
                                 _native.array(ctypes.c_void_p, [a.ctypes.data for a in outs]), base, workspace_bytes)
    try:
        _native.answer(raw)
    except RuntimeError as exc:
        raise RuntimeError(f"plugin layer {node.name}: {exc}") from None
    sizes = {i: int(outs[i].reshape(-1)[0]) for i in sizes_upper}
    for i, ((rank, exprs), name) in enumerate(zip(node.build["outputs"], node.outputs)):
        shape = [evaluate(e, symbols, sizes) for e in exprs]
        value = outs[i].reshape(-1)[: int(np.prod(shape))].reshape(shape)
        want = numpy_dtype(node.graph_out_types[i])
        env[name] = value if want == value.dtype else value.astype(want)  # a reformat layer
    return sizes


# ---- the plan ----

def pack(header: dict, model: onnx.ModelProto) -> bytes:
    body = json.dumps(header).encode()
    return MAGIC + struct.pack("<Q", len(body)) + body + model.SerializeToString()


def unpack(data: bytes) -> tuple[dict, onnx.ModelProto]:
    if not data.startswith(MAGIC):
        raise ValueError("the buffer is not a serialized engine (magic tag mismatch)")
    (n,) = struct.unpack_from("<Q", data, len(MAGIC))
    start = len(MAGIC) + 8
    header = json.loads(data[start:start + n].decode())
    model = onnx.ModelProto()
    model.ParseFromString(data[start + n:])
    return header, model


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def unb64(text: str) -> bytes:
    return base64.b64decode(text)


def field_arrays(fields: list) -> list[tuple[str, int, int, np.ndarray]]:
    """[[name, type, length, hex], ...] -> the fields as create_plugin takes them (each holds its data)."""
    args = []
    sizes = {0: 2, 1: 4, 2: 8, 3: 1, 4: 2, 5: 4, 6: 1, 9: 2, 10: 8}
    for name, ftype, length, hexdata in fields:
        raw = bytes.fromhex(hexdata)
        arr = np.frombuffer(raw, np.uint8).copy() if raw else np.zeros(max(sizes.get(ftype, 1) * length, 1), np.uint8)
        args.append((name, ftype, length, arr))
    return args


def create_plugin(creator: int, name: str, fields: list[tuple[str, int, int, np.ndarray]], phase: int) -> int | None:
    lib = _native.lib()
    names = _native.array(ctypes.c_char_p, [f[0].encode() for f in fields])
    data = _native.array(ctypes.c_void_p, [f[3].ctypes.data for f in fields])
    types = _native.array(ctypes.c_int32, [f[1] for f in fields])
    lengths = _native.array(ctypes.c_int32, [f[2] for f in fields])
    return lib.emu_create_plugin(creator, name.encode(), len(fields), names, data, types, lengths, phase)


def onnx_attribute_fields(node: onnx.NodeProto, wanted: dict[str, int]) -> list[tuple[str, int, int, np.ndarray]]:
    """onnx-tensorrt's fallback plugin importer: the node's attributes that the creator lists in
    getFieldNames, INT(S) as kINT32, FLOAT(S) as kFLOAT32, STRING as kCHAR."""
    out = []
    for attr in node.attribute:
        if attr.name not in wanted:
            continue
        if attr.type == onnx.AttributeProto.INT:
            arr, ftype = np.array([attr.i], np.int32), PluginFieldType.INT32.value
        elif attr.type == onnx.AttributeProto.FLOAT:
            arr, ftype = np.array([attr.f], np.float32), PluginFieldType.FLOAT32.value
        elif attr.type == onnx.AttributeProto.INTS:
            arr, ftype = np.array(list(attr.ints), np.int32), PluginFieldType.INT32.value
        elif attr.type == onnx.AttributeProto.FLOATS:
            arr, ftype = np.array(list(attr.floats), np.float32), PluginFieldType.FLOAT32.value
        elif attr.type == onnx.AttributeProto.STRING:
            arr, ftype = np.frombuffer(attr.s, np.uint8).copy(), PluginFieldType.CHAR.value
        else:
            continue
        out.append((attr.name, ftype, int(arr.size), arr))
    return out
