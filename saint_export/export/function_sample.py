"""The per-sample SaintTokenDrop (version 2, ``per_sample = 1``) as a model-local ONNX function.

Each sample b has ``len_b = sum(mask[b])`` real tokens, a prefix of its row, and is handled
exactly as ``saint_export.reference.rule.saint_drop`` handles that prefix alone:

* a-rows ``i < Na_b`` and b-columns ``j < Nb_b`` of the sample take part (Na_b = ceil((len_b - P) / 2));
* ``r_b`` counts the sample's own voting rows (or ``min(fixed_r, Na_b)``), 0 when len_b - P < 2;
* its order, and the identity layout when ``r_b == 0``, are the batch op's;
* the output is padded to M = max_b (len_b - r_b): kept_index -1, zero tokens, mask_out False.

The ragged layout is built without loops: every input token gets a sort key (its output slot
when kept, N + something unique when dropped) and one ascending TopK(M) orders the batch.
Shared steps (constants, normalisation, similarity) come from :mod:`.function`.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper

from .function import (
    _const,
    _constants,
    _Graph,
    _normalised_halves,
    _similarity,
    head_and_b_positions,
    score_nodes,
)
from .opdef import ATTRIBUTES, DOMAIN, OP_TYPE, PER_SAMPLE


def _lengths(g: _Graph) -> None:
    """len_b, Na_b, Nb_b [B]; row_valid [B, Na]; col_valid [B, 1, Nb'] (Nb' = S's width)."""
    g.n("Cast", ["mask"], "mask64", to=TensorProto.INT64)
    g.n("ReduceSum", ["mask64", "ax1"], "len", keepdims=0)
    g.n("Sub", ["len", "P"], "free")
    g.n("Max", ["free", "i0"], "free0")
    g.n("Add", ["free0", "i1"], "free1")
    g.n("Div", ["free1", "i2"], "na_b")
    g.n("Div", ["free0", "i2"], "nb_b")
    g.n("Range", ["i0", "Na", "i1"], "arange_a")
    g.n("Unsqueeze", ["na_b", "ax1"], "na1")
    g.n("Unsqueeze", ["arange_a", "ax0"], "arange_a1")
    g.n("Less", ["arange_a1", "na1"], "row_valid")
    g.n("Shape", ["S"], "sshape")
    g.n("Gather", ["sshape", "i2"], "NbS", axis=0)
    g.n("Range", ["i0", "NbS", "i1"], "arange_s")
    g.n("Unsqueeze", ["arange_s", "ax0"], "arange_s1")
    g.n("Unsqueeze", ["nb_b", "ax1"], "nb1")
    g.n("Less", ["arange_s1", "nb1"], "col_valid2")
    g.n("Unsqueeze", ["col_valid2", "ax1"], "col_valid")


def _vote(g: _Graph) -> None:
    """Edges inside the sample, counts, and r_b [B] (vote or fixed, clamped, 0 when too short)."""
    g.n("GreaterOrEqual", ["S", "thr"], "edge")
    g.n("And", ["edge", "col_valid"], "valid")
    g.n("Cast", ["valid"], "validf", to=TensorProto.FLOAT)
    g.n("ReduceSum", ["validf", "axl"], "cntf", keepdims=0)
    g.n("Cast", ["cntf"], "cnt", to=TensorProto.INT64)
    g.n("GreaterOrEqual", ["cnt", "K"], "votes_all")
    g.n("And", ["votes_all", "row_valid"], "votes_b")
    g.n("Cast", ["votes_b"], "votes", to=TensorProto.INT64)
    g.n("ReduceSum", ["votes", "ax1"], "r_vote", keepdims=0)
    g.n("GreaterOrEqual", ["FR", "i0"], "use_fixed")
    g.n("Where", ["use_fixed", "FR", "r_vote"], "r_raw")
    g.n("Min", ["r_raw", "na_b"], "r_hi")
    g.n("Max", ["r_hi", "i0"], "r_clamped")
    g.n("GreaterOrEqual", ["free", "i2"], "long_enough")
    g.n("Where", ["long_enough", "r_clamped", "i0"], "r")
    g.n("Unsqueeze", ["r", "ax1"], "r1")


def _order(g: _Graph) -> None:
    """Scores over the sample's own columns; rows outside the sample sort last; rank of each a-row."""
    g.n("Where", ["valid", "S", "f0"], "Sv")
    g.n("Where", ["col_valid", "S", "f0"], "Sc")
    score_nodes(g, "Sv", "Sc", "nb1")
    g.n("Where", ["row_valid", "score", "ninf"], "score_m")
    g.n("Unsqueeze", ["Na", "ax0"], "Na1")
    g.n("TopK", ["score_m", "Na1"], ["_vals", "order"], axis=-1, largest=1, sorted=1)
    g.per_sample("arange_a", "Na", "arange_ab")
    g.n("ScatterElements", ["order", "order", "arange_ab"], "rank", axis=1)


def _keys(g: _Graph) -> None:
    """Sort key and input position of every token, laid out [head P, a-rows, b-rows]."""
    head_and_b_positions(g)
    g.n("Mul", ["arange_a", "i2"], "a2")
    g.n("Add", ["a2", "P"], "pos_a1")
    g.per_sample("pos_a1", "Na", "pos_a")
    g.n("Concat", ["head_b", "pos_a", "b_b"], "pos_all", axis=1)
    # kept a-row of rank k >= r_b -> slot P + k - r_b; b-column j -> P + Na_b - r_b + j; dropped -> N + position
    g.n("GreaterOrEqual", ["rank", "r1"], "a_after_r")
    g.n("And", ["a_after_r", "row_valid"], "a_keep")
    g.n("Sub", ["rank", "r1"], "rank_r")
    g.n("Add", ["rank_r", "P"], "slot_a")
    g.n("Add", ["pos_a", "N"], "gone_a")
    g.n("Where", ["a_keep", "slot_a", "gone_a"], "key_a")
    g.n("Unsqueeze", ["bidx", "ax0"], "arange_b1")
    g.n("Less", ["arange_b1", "nb1"], "b_keep")
    g.n("Sub", ["na1", "r1"], "kept_a")
    g.n("Add", ["kept_a", "P"], "b_base")
    g.n("Add", ["arange_b1", "b_base"], "slot_b")
    g.n("Add", ["b_b", "N"], "gone_b")
    g.n("Where", ["b_keep", "slot_b", "gone_b"], "key_b")
    g.n("Concat", ["head_b", "key_a", "key_b"], "key_pruned", axis=1)
    # r_b == 0: the sample comes back unreordered
    g.n("Unsqueeze", ["len", "ax1"], "len1")
    g.n("Less", ["pos_all", "len1"], "real")
    g.n("Add", ["pos_all", "N"], "gone_all")
    g.n("Where", ["real", "pos_all", "gone_all"], "key_ident")
    g.n("Greater", ["r1", "i0"], "pruned")
    g.n("Where", ["pruned", "key_pruned", "key_ident"], "keys")


def _gather(g: _Graph) -> None:
    """M = max_b (len_b - r_b); ascending TopK(M) of the keys; padding slots get -1 / zero / False."""
    g.n("Sub", ["len", "r"], "m_b")
    g.n("ReduceMax", ["m_b"], "M1", keepdims=1)
    g.n("TopK", ["keys", "M1"], ["slot_keys", "slot_src"], axis=-1, largest=0, sorted=1)
    g.n("GatherElements", ["pos_all", "slot_src"], "kept_pos", axis=1)
    g.n("Less", ["slot_keys", "N"], "mask_out")
    g.n("Where", ["mask_out", "kept_pos", "neg1"], "kept_index")
    g.n("Unsqueeze", ["kept_pos", "axl"], "kept3")
    g.n("GatherND", ["tokens", "kept3"], "gathered", batch_dims=1)
    g.n("Unsqueeze", ["mask_out", "axl"], "mask3")
    g.n("CastLike", ["f0", "tokens"], "zero_t")
    g.n("Where", ["mask3", "gathered", "zero_t"], "tokens_out")


def _sample_constants(g: _Graph) -> None:
    g.nodes += [_const("neg1", -1, np.int64), _const("ninf", -np.inf, np.float32)]


def function_proto_per_sample(opset: int = 18) -> onnx.FunctionProto:
    g = _Graph()
    for step in (_constants, _sample_constants, _normalised_halves, _similarity, _lengths, _vote, _order, _keys, _gather):
        step(g)
    return helper.make_function(
        DOMAIN, OP_TYPE, ["tokens", "metric", "mask"], ["tokens_out", "kept_index", "mask_out"], g.nodes,
        opset_imports=[helper.make_opsetid("", opset)], attributes=[a.name for a in ATTRIBUTES] + [PER_SAMPLE.name],
    )
