"""SaintTokenDrop's ONNX function in onnxruntime against the reference rule, op by op."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper

from saint_export.export.function import function_proto
from saint_export.reference.rule import saint_drop
from saint_export.reference.schedule import LayerRule  # noqa: E402


def session(attrs, dtype=TensorProto.FLOAT):
    node = helper.make_node("SaintTokenDrop", ["tokens", "metric"], ["out", "kept"], domain="saint", **attrs)
    graph = helper.make_graph(
        [node], "g",
        [helper.make_tensor_value_info("tokens", dtype, ["B", "N", "C"]), helper.make_tensor_value_info("metric", dtype, ["B", "N", "D"])],
        [helper.make_tensor_value_info("out", dtype, ["B", "M", "C"]), helper.make_tensor_value_info("kept", TensorProto.INT64, ["B", "M"])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid("saint", 1)],
                              functions=[function_proto()], ir_version=10)
    onnx.checker.check_model(model, full_check=True)
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


CASES = [  # B, N, D, P, threshold, k, fixed_r
    (2, 197, 64, 1, 0.5, 2, -1),
    (3, 9, 8, 1, 0.3, 1, -1),
    (1, 2, 4, 1, 0.1, 1, 5),  # N - P < 2: identity even with fixed_r
    (4, 50, 16, 5, 0.2, 3, -1),  # registers
    (2, 50, 16, 0, 0.9, 5, -1),  # no protected token
    (2, 51, 16, 2, 0.5, 1, 7),  # fixed_r, odd N
    (2, 11, 4, 1, 0.99, 1, -1),  # r = 0
    (3, 257, 80, 1, 0.4, 5, -1),  # ViT-H/14 shape
]


@pytest.mark.parametrize("b,n,d,p,thr,k,fixed_r", CASES)
def test_function_equals_reference(b, n, d, p, thr, k, fixed_r):
    torch.manual_seed(n)
    metric = torch.randn(b, n, d)
    metric[:, 3::4] = metric[:, 1:2]  # duplicate tokens
    tokens = torch.randn(b, n, 12)
    out, kept = session(dict(threshold=thr, k=k, gamma=10.0, protected=p, fixed_r=fixed_r)).run(
        None, {"tokens": tokens.numpy(), "metric": metric.numpy()})
    ref = saint_drop(tokens, metric, LayerRule(threshold=thr, k=k, gamma=10.0, fixed_r=fixed_r), p)
    assert np.array_equal(kept, ref.kept_index.numpy())
    assert np.array_equal(out, ref.tokens.numpy())


def test_identical_tokens_and_ties():
    metric = torch.ones(2, 11, 4)
    tokens = torch.arange(2 * 11 * 3, dtype=torch.float32).reshape(2, 11, 3)
    out, kept = session(dict(threshold=0.75, k=5, gamma=10.0, protected=1, fixed_r=-1)).run(
        None, {"tokens": tokens.numpy(), "metric": metric.numpy()})
    assert kept.tolist() == saint_drop(tokens, metric, LayerRule(threshold=0.75, k=5, gamma=10.0), 1).kept_index.tolist()
    assert kept[0].tolist() == [0, 2, 4, 6, 8, 10]


def test_batch_mean_vote():
    metric = torch.randn(2, 9, 6)
    metric[0] = 1.0  # sample 0: all 4 a-rows vote; sample 1: random, fewer votes
    tokens = torch.randn(2, 9, 3)
    ref = saint_drop(tokens, metric, LayerRule(threshold=0.75, k=1, gamma=10.0), 1)
    out, kept = session(dict(threshold=0.75, k=1, gamma=10.0, protected=1, fixed_r=-1)).run(
        None, {"tokens": tokens.numpy(), "metric": metric.numpy()})
    assert kept.shape[1] == 9 - ref.r and np.array_equal(kept, ref.kept_index.numpy())


def test_fp16_inputs_keep_similarity_in_fp32():
    torch.manual_seed(0)
    metric = torch.randn(2, 65, 16)
    metric[:, 2::3] = metric[:, 1:2]
    tokens = torch.randn(2, 65, 8)
    s = session(dict(threshold=0.6, k=2, gamma=10.0, protected=1, fixed_r=-1), TensorProto.FLOAT16)
    out, kept = s.run(None, {"tokens": tokens.half().numpy(), "metric": metric.half().numpy()})
    ref = saint_drop(tokens.half(), metric.half(), LayerRule(threshold=0.6, k=2, gamma=10.0), 1)
    assert out.dtype == np.float16
    assert np.array_equal(kept, ref.kept_index.numpy())
    assert np.array_equal(out, ref.tokens.numpy())
