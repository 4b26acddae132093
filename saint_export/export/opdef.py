"""The ONNX op ``saint.SaintTokenDrop`` (version 1): name, attributes, schema, translation.

This table is the single source of truth for the op's interface; the TensorRT plugin's
spec (``plugins/saint_token_drop/spec.yaml``) reads the same names and is tested against it.
"""

from __future__ import annotations

from dataclasses import dataclass

import onnx
from onnx import defs

DOMAIN = "saint"
OP_TYPE = "SaintTokenDrop"
VERSION = 1
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
INPUTS = (("tokens", "T", "[B, N, C] hidden states after the attention residual"),
          ("metric", "T", "[B, N, D] attention keys averaged over heads"))
OUTPUTS = (("tokens_out", "T", "[B, N - r, C]: protected, kept a-side in score order, all b-side"),
           ("kept_index", "tensor(int64)", "[B, N - r]: input position of each output token"))
# TensorRT-lowered vote nodes (fixed_r = -1) carry the plugin's size tensor as an optional third
# output; fixed_r >= 0 nodes have two outputs (M = N - min(fixed_r, Na) is a shape expression)
SIZE_OUTPUT = ("kept_count", "tensor(int64)", "scalar N - r (TensorRT size tensor)")


def _attr_type(kind: str):
    return defs.OpSchema.AttrType.FLOAT if kind == "float" else defs.OpSchema.AttrType.INT


def schema() -> defs.OpSchema:
    return defs.OpSchema(
        OP_TYPE, DOMAIN, VERSION,
        doc="SAINT similarity-aware token drop; the output token count is data-dependent.",
        inputs=[defs.OpSchema.FormalParameter(n, t, d) for n, t, d in INPUTS],
        outputs=[defs.OpSchema.FormalParameter(n, t, d) for n, t, d in OUTPUTS]
        + [defs.OpSchema.FormalParameter(*SIZE_OUTPUT, param_option=defs.OpSchema.FormalParameterOption.Optional)],
        type_constraints=[("T", FLOAT_TYPES, "float tensors; similarity math is always float32")],
        attributes=[defs.OpSchema.Attribute(a.name, _attr_type(a.kind), a.doc) for a in ATTRIBUTES]
        + [defs.OpSchema.Attribute(name, defs.OpSchema.AttrType.STRING, "TensorRT plugin lookup (TensorRT-lowered nodes)", required=False)
           for name in ("plugin_version", "plugin_namespace")],
    )


def register_schema() -> None:
    """Make onnx (checker, shape inference) and the exporter know the op. Idempotent."""
    try:
        defs.get_schema(OP_TYPE, VERSION, DOMAIN)
    except onnx.defs.SchemaError:
        defs.register_schema(schema())


def translation_table() -> dict:
    """torch.onnx dynamo exporter entry: ``saint::token_drop`` -> one SaintTokenDrop node."""
    import onnxscript
    import torch

    from ..reference import ops  # noqa: F401  (registers the torch op)

    register_schema()
    opset = onnxscript.values.Opset(DOMAIN, VERSION)

    def saint_token_drop(tokens, metric, threshold, k, gamma, protected, fixed_r):
        return opset.SaintTokenDrop(tokens, metric, threshold=float(threshold), k=int(k), gamma=float(gamma),
                                    protected=int(protected), fixed_r=int(fixed_r), _num_outputs=2)

    return {torch.ops.saint.token_drop.default: saint_token_drop}
