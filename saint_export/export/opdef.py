"""The ONNX op ``saint.SaintTokenDrop``: name, attributes, schema, translation.

Version 1: the batch-mean vote (SAINT). Version 2 adds the batch-invariant per-sample vote:
the attribute ``per_sample``, the optional input ``mask`` [B, N] and the optional output
``mask_out`` [B, M] (True = a real token, a prefix of each row; padding slots have kept_index
-1 and zero tokens). Exports use version 1 unless the schedule votes per sample, so every
batch-mode artifact and plugin build stays as it was.

This table is the single source of truth for the op's interface; the TensorRT plugin's
spec (``plugins/saint_token_drop/spec.yaml``) reads the same names and is tested against it.
"""

from __future__ import annotations

from dataclasses import dataclass

import onnx
from onnx import defs

from ..reference import ops  # noqa: F401  (registers the torch op)

DOMAIN = "saint"
OP_TYPE = "SaintTokenDrop"
VERSION = 1
SAMPLE_VERSION = 2  # per_sample, mask, mask_out
PLUGIN_VERSION = "1"
PLUGIN_NAMESPACE = "saint"
FLOAT_TYPES = ["tensor(float)", "tensor(float16)", "tensor(bfloat16)"]


@dataclass(frozen=True)
class Attr:
    name: str
    kind: str  # "float" | "int"
    default: float | int
    doc: str


ATTRIBUTES = (
    Attr("threshold", "float", 0.75, "tau: an (a, b) edge counts when cosine similarity >= tau; in [-1, 1]"),
    Attr("k", "int", 5, "K: an a-row votes to drop when it has at least K edges; >= 1"),
    Attr("gamma", "float", 10.0, "gamma: sharpness of the score cnt * exp(gamma * (mean valid S - tau))"),
    Attr("protected", "int", 1, "P: leading tokens never dropped (class, distillation, registers); >= 0"),
    Attr("fixed_r", "int", -1, "-1: r from the batch-mean vote; >= 0: r = min(fixed_r, Na)"),
)
PER_SAMPLE = Attr("per_sample", "int", 0, "version 2: 0 = batch-mean vote; 1 = each sample votes alone, rows padded to the longest")
INPUTS = (("tokens", "T", "[B, N, C] hidden states after the attention residual"),
          ("metric", "T", "[B, N, D] attention keys averaged over heads"))
OUTPUTS = (("tokens_out", "T", "[B, N - r, C]: protected, kept a-side in score order, all b-side"),
           ("kept_index", "tensor(int64)", "[B, N - r]: input position of each output token"))
# TensorRT-lowered vote nodes (fixed_r = -1) carry the plugin's size tensor as an optional third
# output; fixed_r >= 0 nodes have two outputs (M = N - min(fixed_r, Na) is a shape expression)
SIZE_OUTPUT = ("kept_count", "tensor(int32)", "scalar N - r (TensorRT size tensor: kINT32)")
# bool in the traced and portable models; int32 on TensorRT-lowered nodes (plugins take no BOOL I/O)
MASK_INPUT = ("mask", "M", "version 2: [B, N] real tokens (a prefix of each row); absent = all real")
MASK_OUTPUT = ("mask_out", "M", "version 2, per_sample = 1: [B, M] real tokens of the output")
MASK_TYPES = ["tensor(bool)", "tensor(int32)"]
MAX_TOKENS = "max_tokens"  # TensorRT-lowered nodes: an upper bound on N (the size tensor's opt and upper)


def attribute_values(fields) -> dict:
    """The op's ``ATTRIBUTES`` read from ``fields`` (a mapping of the torch op's keyword arguments), typed."""
    return {a.name: float(fields[a.name]) if a.kind == "float" else int(fields[a.name]) for a in ATTRIBUTES}


def version_for(per_sample: bool) -> int:
    return SAMPLE_VERSION if per_sample else VERSION


def _attr_type(kind: str):
    return defs.OpSchema.AttrType.FLOAT if kind == "float" else defs.OpSchema.AttrType.INT


def _optional(name: str, type_str: str, doc: str) -> defs.OpSchema.FormalParameter:
    return defs.OpSchema.FormalParameter(name, type_str, doc, param_option=defs.OpSchema.FormalParameterOption.Optional)


def schema(version: int = VERSION) -> defs.OpSchema:
    v2 = version == SAMPLE_VERSION
    return defs.OpSchema(
        OP_TYPE, DOMAIN, version,
        doc="SAINT similarity-aware token drop; the output token count is data-dependent.",
        inputs=[defs.OpSchema.FormalParameter(n, t, d) for n, t, d in INPUTS] + ([_optional(*MASK_INPUT)] if v2 else []),
        outputs=[defs.OpSchema.FormalParameter(n, t, d) for n, t, d in OUTPUTS]
        + ([_optional(*MASK_OUTPUT)] if v2 else []) + [_optional(*SIZE_OUTPUT)],
        type_constraints=[("T", FLOAT_TYPES, "float tensors; similarity math is always float32")]
        + ([("M", MASK_TYPES, "bool masks; int32 on TensorRT-lowered nodes")] if v2 else []),
        attributes=[defs.OpSchema.Attribute(a.name, _attr_type(a.kind), a.doc) for a in ATTRIBUTES]
        + ([defs.OpSchema.Attribute(PER_SAMPLE.name, defs.OpSchema.AttrType.INT, PER_SAMPLE.doc, required=False)] if v2 else [])
        + [defs.OpSchema.Attribute(name, defs.OpSchema.AttrType.STRING, "TensorRT plugin lookup (TensorRT-lowered nodes)", required=False)
           for name in ("plugin_version", "plugin_namespace")]
        + [defs.OpSchema.Attribute(MAX_TOKENS, defs.OpSchema.AttrType.INT,
                                   "upper bound on N (TensorRT-lowered nodes: the size tensor's opt and upper)", required=False)],
    )


def register_schema() -> None:
    """Make onnx (checker, shape inference) and the exporter know both versions of the op. Idempotent."""
    for version in (VERSION, SAMPLE_VERSION):
        try:
            defs.get_schema(OP_TYPE, version, DOMAIN)
            if defs.get_schema(OP_TYPE, version, DOMAIN).since_version != version:
                raise onnx.defs.SchemaError("")
        except onnx.defs.SchemaError:
            defs.register_schema(schema(version))


def translation_table() -> dict:
    """torch.onnx dynamo exporter entry: ``saint::token_drop`` -> one SaintTokenDrop node; a stable
    ``torch.sort`` (the iterative drop's) -> torchlib's sort, one TopK, whose ties go to the lower
    index (the ONNX spec): what ``stable=True`` means."""
    import onnxscript
    import torch

    register_schema()
    opset = onnxscript.values.Opset(DOMAIN, VERSION)
    opset2 = onnxscript.values.Opset(DOMAIN, SAMPLE_VERSION)

    def saint_token_drop(tokens, metric, **fields):
        return opset.SaintTokenDrop(tokens, metric, **attribute_values(fields), _num_outputs=2)

    def saint_token_drop_sample(tokens, metric, mask, **fields):
        return opset2.SaintTokenDrop(tokens, metric, mask, **attribute_values(fields), per_sample=1, _num_outputs=3)

    from onnxscript.function_libs.torch_lib.ops.core import aten_sort

    return {torch.ops.saint.token_drop.default: saint_token_drop,
            torch.ops.saint.token_drop_sample.default: saint_token_drop_sample,
            torch.ops.aten.sort.stable: aten_sort}
