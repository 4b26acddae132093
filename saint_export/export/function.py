"""SaintTokenDrop as a model-local ONNX function (standard ops only, opset >= 18).

Stock onnxruntime, and any runtime that inlines functions, runs the op with no extra
library. The body follows ``saint_export.rule.saint_drop`` step by step:

* similarity in float32 whatever the input type; ``m / max(sqrt(sum m^2), EPS)``;
* ``r = (sum of votes) // B`` with int64 ``Div`` (truncation == floor, operands >= 0);
* stable descending order via ``TopK(largest=1, sorted=1)``, whose ties keep the lower index;
* ``r == 0`` (and ``N - P < 2``) selects ``arange(N)``, so the input comes back unreordered.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import AttributeProto, TensorProto, helper, numpy_helper

from ..rule import EPS
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


def function_proto(opset: int = 18) -> onnx.FunctionProto:
    nodes: list[onnx.NodeProto] = []

    def n(op, inputs, outputs, **attrs):
        nodes.append(helper.make_node(op, inputs, outputs if isinstance(outputs, list) else [outputs], **attrs))
        return outputs

    def per_sample(vector: str, length: str, out: str) -> None:
        """Broadcast the 1-D ``vector`` (``length`` scalar elements) to [B, length]."""
        n("Unsqueeze", [vector, "ax0"], f"{out}_row")
        n("Unsqueeze", [length, "ax0"], f"{out}_len1")
        n("Concat", ["B1", f"{out}_len1"], f"{out}_shape", axis=0)
        n("Expand", [f"{out}_row", f"{out}_shape"], out)

    kinds = {a.name: a.kind for a in ATTRIBUTES}
    for attr, out in (("threshold", "thr"), ("gamma", "gam"), ("protected", "P"), ("k", "K"), ("fixed_r", "FR")):
        node = helper.make_node("Constant", [], [out])
        node.attribute.append(_attr_ref("value_float" if kinds[attr] == "float" else "value_int", attr, kinds[attr]))
        nodes.append(node)
    nodes += [
        _const("i0", 0, np.int64), _const("i1", 1, np.int64), _const("i2", 2, np.int64),
        _const("ax0", [0], np.int64), _const("ax1", [1], np.int64), _const("axl", [-1], np.int64),
        _const("one1", [1], np.int64), _const("two1", [2], np.int64), _const("zero1", [0], np.int64),
        _const("big1", [INT64_MAX], np.int64), _const("zeros5", [0, 0, 0, 0, 0], np.int64),
        _const("f0", 0.0, np.float32), _const("f1", 1.0, np.float32), _const("eps", EPS, np.float32),
    ]
    # shapes
    n("Shape", ["tokens"], "tshape")
    n("Gather", ["tshape", "i0"], "B", axis=0)
    n("Gather", ["tshape", "i1"], "N", axis=0)
    n("Unsqueeze", ["B", "ax0"], "B1")
    n("Unsqueeze", ["P", "ax0"], "P1")
    # 1. normalise the unprotected metric rows in float32, split a (even) / b (odd)
    n("Cast", ["metric"], "m", to=TensorProto.FLOAT)
    n("Slice", ["m", "P1", "big1", "ax1"], "mp")
    n("Mul", ["mp", "mp"], "msq")
    n("ReduceSum", ["msq", "axl"], "ss", keepdims=1)
    n("Sqrt", ["ss"], "nrm0")
    n("Max", ["nrm0", "eps"], "nrm")
    n("Div", ["mp", "nrm"], "mn")
    n("Slice", ["mn", "zero1", "big1", "ax1", "two1"], "a")
    n("Slice", ["mn", "one1", "big1", "ax1", "two1"], "b")
    n("Shape", ["a"], "ashape")
    n("Gather", ["ashape", "i1"], "Na", axis=0)
    n("Shape", ["b"], "bshape")
    n("Gather", ["bshape", "i1"], "Nb", axis=0)
    # 2. similarity, edges, counts
    n("Transpose", ["b"], "bt", perm=[0, 2, 1])
    n("MatMul", ["a", "bt"], "S0")
    # N - P == 1 leaves b empty; onnxruntime reduces an empty axis to the wrong shape, so give
    # S one zero column then (r is forced to 0 below, so its values never matter)
    n("Equal", ["Nb", "i0"], "b_empty")
    n("Cast", ["b_empty"], "pad_amt", to=TensorProto.INT64)
    n("Unsqueeze", ["pad_amt", "ax0"], "pad_amt1")
    n("Concat", ["zeros5", "pad_amt1"], "pads", axis=0)
    n("Pad", ["S0", "pads"], "S", mode="constant")
    n("GreaterOrEqual", ["S", "thr"], "valid")
    n("Cast", ["valid"], "validf", to=TensorProto.FLOAT)
    n("ReduceSum", ["validf", "axl"], "cntf", keepdims=0)
    n("Cast", ["cntf"], "cnt", to=TensorProto.INT64)
    # 3. r: integer batch-mean vote or fixed, clamped to [0, Na]; 0 when N - P < 2
    n("GreaterOrEqual", ["cnt", "K"], "votes_b")
    n("Cast", ["votes_b"], "votes", to=TensorProto.INT64)
    n("ReduceSum", ["votes"], "total", keepdims=0)
    n("Div", ["total", "B"], "r_vote")
    n("GreaterOrEqual", ["FR", "i0"], "use_fixed")
    n("Where", ["use_fixed", "FR", "r_vote"], "r_raw")
    n("Min", ["r_raw", "Na"], "r_hi")
    n("Max", ["r_hi", "i0"], "r_clamped")
    n("Sub", ["N", "P"], "NmP")
    n("GreaterOrEqual", ["NmP", "i2"], "long_enough")
    n("Where", ["long_enough", "r_clamped", "i0"], "r")
    # 4. scores
    n("Mul", ["S", "validf"], "Sv")
    n("ReduceSum", ["Sv", "axl"], "sumv", keepdims=0)
    n("Max", ["cntf", "f1"], "cnt_safe")
    n("Div", ["sumv", "cnt_safe"], "vmean")
    n("Sub", ["vmean", "thr"], "excess")
    n("Mul", ["gam", "excess"], "gx")
    n("Exp", ["gx"], "egx")
    n("Mul", ["cntf", "egx"], "cand")
    n("ReduceSum", ["S", "axl"], "rowsum", keepdims=0)
    n("Cast", ["Nb"], "Nbf", to=TensorProto.FLOAT)
    n("Div", ["rowsum", "Nbf"], "alt")
    n("Greater", ["cntf", "f0"], "has_edge")
    n("Where", ["has_edge", "cand", "alt"], "score")
    # 5. stable descending order (TopK breaks ties by lower index)
    n("Unsqueeze", ["Na", "ax0"], "Na1")
    n("TopK", ["score", "Na1"], ["_vals", "order"], axis=-1, largest=1, sorted=1)
    # 6. kept positions: [protected, a kept in score order, b in order]
    n("Unsqueeze", ["r", "ax0"], "r1")
    n("Slice", ["order", "r1", "big1", "ax1"], "a_kept")
    n("Mul", ["a_kept", "i2"], "a_kept2")
    n("Add", ["a_kept2", "P"], "a_pos")
    n("Range", ["i0", "P", "i1"], "head")
    per_sample("head", "P", "head_b")
    n("Range", ["i0", "Nb", "i1"], "bidx")
    n("Mul", ["bidx", "i2"], "bidx2")
    n("Add", ["P", "i1"], "P_plus1")
    n("Add", ["bidx2", "P_plus1"], "b_pos")
    per_sample("b_pos", "Nb", "b_b")
    n("Concat", ["head_b", "a_pos", "b_b"], "sorted_kept", axis=1)
    # 7. r == 0: identity order
    n("Sub", ["N", "r"], "M")
    n("Range", ["i0", "M", "i1"], "ident")
    per_sample("ident", "M", "ident_b")
    n("Greater", ["r", "i0"], "pruned")
    n("Where", ["pruned", "sorted_kept", "ident_b"], "kept_index")
    n("Unsqueeze", ["kept_index", "axl"], "kept3")
    n("GatherND", ["tokens", "kept3"], "tokens_out", batch_dims=1)

    fn = helper.make_function(
        DOMAIN, OP_TYPE, ["tokens", "metric"], ["tokens_out", "kept_index"], nodes,
        opset_imports=[helper.make_opsetid("", opset)], attributes=[a.name for a in ATTRIBUTES],
    )
    return fn
