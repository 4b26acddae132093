"""SaintTokenDrop as a model-local ONNX function (standard ops only, opset >= 18).

Stock onnxruntime, and any runtime that inlines functions, runs the op with no extra
library. The body follows ``saint_export.reference.rule.saint_drop`` step by step:

* similarity in float32 whatever the input type; ``m / max(sqrt(sum m^2), EPS)``;
* ``r = (sum of votes) // B`` with int64 ``Div`` (truncation == floor, operands >= 0);
* stable descending order via ``TopK(largest=1, sorted=1)``, whose ties keep the lower index;
* ``r == 0`` (and ``N - P < 2``) selects ``arange(N)``, so the input comes back unreordered.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import AttributeProto, TensorProto, helper, numpy_helper

from ..reference.rule import EPS
from .opdef import ATTRIBUTES, DOMAIN, OP_TYPE

INT64_MAX = np.iinfo(np.int64).max


def _attr_ref(name: str, ref: str, kind: str) -> AttributeProto:
    attr = AttributeProto()
    attr.name = name
    attr.ref_attr_name = ref
    attr.type = AttributeProto.FLOAT if kind == "float" else AttributeProto.INT
    return attr


def _const(name: str, value, dtype) -> onnx.NodeProto:
    return helper.make_node("Constant", [], [name], value=numpy_helper.from_array(np.array(value, dtype=dtype), name))


class _Graph:
    """The function body under construction: ``n`` appends one node, ``per_sample`` broadcasts."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []

    def n(self, op: str, inputs: list[str], outputs, **attrs):
        self.nodes.append(helper.make_node(op, inputs, outputs if isinstance(outputs, list) else [outputs], **attrs))
        return outputs

    def per_sample(self, vector: str, length: str, out: str) -> None:
        """Broadcast the 1-D ``vector`` (``length`` scalar elements) to [B, length]."""
        self.n("Unsqueeze", [vector, "ax0"], f"{out}_row")
        self.n("Unsqueeze", [length, "ax0"], f"{out}_len1")
        self.n("Concat", ["B1", f"{out}_len1"], f"{out}_shape", axis=0)
        self.n("Expand", [f"{out}_row", f"{out}_shape"], out)


def _constants(g: _Graph) -> None:
    """The op's attributes (threshold, gamma, P, K, fixed_r) and the literals the body uses."""
    kinds = {a.name: a.kind for a in ATTRIBUTES}
    for attr, out in (("threshold", "thr"), ("gamma", "gam"), ("protected", "P"), ("k", "K"), ("fixed_r", "FR")):
        node = helper.make_node("Constant", [], [out])
        node.attribute.append(_attr_ref("value_float" if kinds[attr] == "float" else "value_int", attr, kinds[attr]))
        g.nodes.append(node)
    g.nodes += [
        _const("i0", 0, np.int64), _const("i1", 1, np.int64), _const("i2", 2, np.int64),
        _const("ax0", [0], np.int64), _const("ax1", [1], np.int64), _const("axl", [-1], np.int64),
        _const("one1", [1], np.int64), _const("two1", [2], np.int64), _const("zero1", [0], np.int64),
        _const("big1", [INT64_MAX], np.int64), _const("zeros5", [0, 0, 0, 0, 0], np.int64),
        _const("f0", 0.0, np.float32), _const("f1", 1.0, np.float32), _const("eps", EPS, np.float32),
    ]


def _normalised_halves(g: _Graph) -> None:
    """1. shapes; the unprotected metric rows L2-normalised in float32, split into a (even) / b (odd)."""
    g.n("Shape", ["tokens"], "tshape")
    g.n("Gather", ["tshape", "i0"], "B", axis=0)
    g.n("Gather", ["tshape", "i1"], "N", axis=0)
    g.n("Unsqueeze", ["B", "ax0"], "B1")
    g.n("Unsqueeze", ["P", "ax0"], "P1")
    # 1. normalise the unprotected metric rows in float32, split a (even) / b (odd)
    g.n("Cast", ["metric"], "m", to=TensorProto.FLOAT)
    g.n("Slice", ["m", "P1", "big1", "ax1"], "mp")
    g.n("Mul", ["mp", "mp"], "msq")
    g.n("ReduceSum", ["msq", "axl"], "ss", keepdims=1)
    g.n("Sqrt", ["ss"], "nrm0")
    g.n("Max", ["nrm0", "eps"], "nrm")
    g.n("Div", ["mp", "nrm"], "mn")
    g.n("Slice", ["mn", "zero1", "big1", "ax1", "two1"], "a")
    g.n("Slice", ["mn", "one1", "big1", "ax1", "two1"], "b")
    g.n("Shape", ["a"], "ashape")
    g.n("Gather", ["ashape", "i1"], "Na", axis=0)
    g.n("Shape", ["b"], "bshape")
    g.n("Gather", ["bshape", "i1"], "Nb", axis=0)


def _similarity(g: _Graph) -> None:
    """2. S = a b^T."""
    g.n("Transpose", ["b"], "bt", perm=[0, 2, 1])
    g.n("MatMul", ["a", "bt"], "S0")
    # N - P == 1 leaves b empty; onnxruntime reduces an empty axis to the wrong shape, so give
    # S one zero column then (r is forced to 0 below, so its values never matter)
    g.n("Equal", ["Nb", "i0"], "b_empty")
    g.n("Cast", ["b_empty"], "pad_amt", to=TensorProto.INT64)
    g.n("Unsqueeze", ["pad_amt", "ax0"], "pad_amt1")
    g.n("Concat", ["zeros5", "pad_amt1"], "pads", axis=0)
    g.n("Pad", ["S0", "pads"], "S", mode="constant")


def _edges(g: _Graph) -> None:
    """Edges S >= tau, counts per a-row."""
    g.n("GreaterOrEqual", ["S", "thr"], "valid")
    g.n("Cast", ["valid"], "validf", to=TensorProto.FLOAT)
    g.n("ReduceSum", ["validf", "axl"], "cntf", keepdims=0)
    g.n("Cast", ["cntf"], "cnt", to=TensorProto.INT64)


def _vote(g: _Graph) -> None:
    """3. r: integer batch-mean vote or fixed, clamped to [0, Na]; 0 when N - P < 2."""
    g.n("GreaterOrEqual", ["cnt", "K"], "votes_b")
    g.n("Cast", ["votes_b"], "votes", to=TensorProto.INT64)
    g.n("ReduceSum", ["votes"], "total", keepdims=0)
    g.n("Div", ["total", "B"], "r_vote")
    g.n("GreaterOrEqual", ["FR", "i0"], "use_fixed")
    g.n("Where", ["use_fixed", "FR", "r_vote"], "r_raw")
    g.n("Min", ["r_raw", "Na"], "r_hi")
    g.n("Max", ["r_hi", "i0"], "r_clamped")
    g.n("Sub", ["N", "P"], "NmP")
    g.n("GreaterOrEqual", ["NmP", "i2"], "long_enough")
    g.n("Where", ["long_enough", "r_clamped", "i0"], "r")


def score_nodes(g: _Graph, valid_s: str, row_s: str, columns: str) -> None:
    """score = cnt * exp(gamma * (sum(valid_s) / max(cnt, 1) - tau)) where cnt > 0, else sum(row_s) / columns."""
    g.n("ReduceSum", [valid_s, "axl"], "sumv", keepdims=0)
    g.n("Max", ["cntf", "f1"], "cnt_safe")
    g.n("Div", ["sumv", "cnt_safe"], "vmean")
    g.n("Sub", ["vmean", "thr"], "excess")
    g.n("Mul", ["gam", "excess"], "gx")
    g.n("Exp", ["gx"], "egx")
    g.n("Mul", ["cntf", "egx"], "cand")
    g.n("ReduceSum", [row_s, "axl"], "rowsum", keepdims=0)
    g.n("Cast", [columns], "Nbf", to=TensorProto.FLOAT)
    g.n("Div", ["rowsum", "Nbf"], "alt")
    g.n("Greater", ["cntf", "f0"], "has_edge")
    g.n("Where", ["has_edge", "cand", "alt"], "score")


def _scores_and_order(g: _Graph) -> None:
    """4. scores; 5. stable descending order (TopK breaks ties by the lower index)."""
    g.n("Mul", ["S", "validf"], "Sv")
    score_nodes(g, "Sv", "S", "Nb")
    g.n("Unsqueeze", ["Na", "ax0"], "Na1")
    g.n("TopK", ["score", "Na1"], ["_vals", "order"], axis=-1, largest=1, sorted=1)


def head_and_b_positions(g: _Graph) -> None:
    """head_b [B, P] = 0..P-1; bidx = 0..Nb-1; b_b [B, Nb] = input positions P + 1 + 2j of the b-tokens."""
    g.n("Range", ["i0", "P", "i1"], "head")
    g.per_sample("head", "P", "head_b")
    g.n("Range", ["i0", "Nb", "i1"], "bidx")
    g.n("Mul", ["bidx", "i2"], "bidx2")
    g.n("Add", ["P", "i1"], "P_plus1")
    g.n("Add", ["bidx2", "P_plus1"], "b_pos")
    g.per_sample("b_pos", "Nb", "b_b")


def _kept_tokens(g: _Graph) -> None:
    """6. kept positions [protected, a kept in score order, b in order]; 7. identity when r == 0; gather."""
    g.n("Unsqueeze", ["r", "ax0"], "r1")
    g.n("Slice", ["order", "r1", "big1", "ax1"], "a_kept")
    g.n("Mul", ["a_kept", "i2"], "a_kept2")
    g.n("Add", ["a_kept2", "P"], "a_pos")
    head_and_b_positions(g)
    g.n("Concat", ["head_b", "a_pos", "b_b"], "sorted_kept", axis=1)
    # 7. r == 0: identity order
    g.n("Sub", ["N", "r"], "M")
    g.n("Range", ["i0", "M", "i1"], "ident")
    g.per_sample("ident", "M", "ident_b")
    g.n("Greater", ["r", "i0"], "pruned")
    g.n("Where", ["pruned", "sorted_kept", "ident_b"], "kept_index")
    g.n("Unsqueeze", ["kept_index", "axl"], "kept3")
    g.n("GatherND", ["tokens", "kept3"], "tokens_out", batch_dims=1)



def function_proto(opset: int = 18) -> onnx.FunctionProto:
    g = _Graph()
    for step in (_constants, _normalised_halves, _similarity, _edges, _vote, _scores_and_order, _kept_tokens):
        step(g)
    return helper.make_function(
        DOMAIN, OP_TYPE, ["tokens", "metric"], ["tokens_out", "kept_index"], g.nodes,
        opset_imports=[helper.make_opsetid("", opset)], attributes=[a.name for a in ATTRIBUTES],
    )
