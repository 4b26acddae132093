"""Cross-library exactness: the same weights in timm and in transformers give the same token
count after every layer and outputs within 1e-5, pruned and unpruned (random ViT-B/16 and
DINOv2-S/14 shaped models, 3 layers; inputs = scikit-image photos + generated images)."""

import pytest
from helpers import hf_layer_tokens
import timm
import torch

transformers = pytest.importorskip("transformers", minversion="5.0")

from saint_export import patch  # noqa: E402
from saint_export.verify.analysis import trace_tokens  # noqa: E402
from saint_export.models.config import ModelConfig  # noqa: E402
from saint_export.errors import ConfigError  # noqa: E402
from saint_export.models.hf_keys import timm_to_transformers, transformers_to_timm  # noqa: E402
from saint_export.inputs import gather_inputs  # noqa: E402
from saint_export.reference.patch import transformers as hfpatch  # noqa: E402
from saint_export.reference.schedule import build_schedule  # noqa: E402

DEPTH = 3
SPECS = [None, {"layers": "all", "threshold": 0.75, "k": 5}, {"layers": [0, 2], "threshold": [0.6, 0.8], "k": [2, 4]}]


def close(a, b, tol=1e-5):
    return torch.allclose(a, b, atol=tol, rtol=tol), float((a - b).abs().max())


@pytest.fixture(scope="module")
def pixels():
    cfg = ModelConfig(alias="x", name="x", input_size=224)
    return gather_inputs(cfg)[0]  # 3 scikit-image photos + 5 generated images


@pytest.fixture(scope="module")
def vit_pair():
    torch.manual_seed(0)
    tm = timm.create_model("vit_base_patch16_224", pretrained=False, depth=DEPTH).eval()
    cfg = transformers.ViTConfig(hidden_size=768, num_hidden_layers=DEPTH, num_attention_heads=12, intermediate_size=3072,
                                 image_size=224, patch_size=16, layer_norm_eps=1e-6, hidden_act="gelu", qkv_bias=True, num_labels=1000)
    hf = transformers.ViTForImageClassification(cfg).eval()
    hf.load_state_dict(timm_to_transformers(tm.state_dict(), "vit", prefix="vit."), strict=True)
    return tm, hf


@pytest.fixture(scope="module")
def dinov2_pair():
    torch.manual_seed(0)
    tm = timm.create_model("vit_small_patch14_dinov2", pretrained=False, img_size=224, depth=DEPTH, num_classes=0).eval()
    with torch.no_grad():  # timm initialises layer scale at 1e-5 (near-identity blocks); make them matter
        for block in tm.blocks:
            block.ls1.gamma.uniform_(0.2, 1.0)
            block.ls2.gamma.uniform_(0.2, 1.0)
    cfg = transformers.Dinov2Config(hidden_size=384, num_hidden_layers=DEPTH, num_attention_heads=6, mlp_ratio=4, image_size=224,
                                    patch_size=14, layer_norm_eps=1e-6, hidden_act="gelu", qkv_bias=True)
    hf = transformers.Dinov2Model(cfg).eval()
    state = timm_to_transformers(tm.state_dict(), "dinov2")
    state["embeddings.mask_token"] = torch.zeros_like(hf.embeddings.mask_token)
    hf.load_state_dict(state, strict=True)
    return tm, hf


def test_key_mapping_round_trips_exactly(vit_pair, dinov2_pair):
    for (tm, _), arch, prefix in ((vit_pair, "vit", "vit."), (dinov2_pair, "dinov2", "")):
        state = tm.state_dict()
        back = transformers_to_timm(timm_to_transformers(state, arch, prefix=prefix), arch, prefix=prefix)
        assert back.keys() == state.keys()
        assert all(torch.equal(back[k], state[k]) for k in state)
    with pytest.raises(ConfigError, match="no transformers"):
        timm_to_transformers({"blocks.0.attn.q_norm.weight": torch.zeros(1)}, "vit")


def run_timm(tm, pixels, spec, out):
    if spec is None:
        with torch.no_grad():
            return out(tm, pixels), None
    patch.timm(tm, build_schedule(spec, DEPTH))
    blocks, _ = trace_tokens(tm, pixels)
    with torch.no_grad():
        result = out(tm, pixels)
    patch.remove_patch(tm)
    return result, [b.tokens_out for b in blocks]


def run_hf(hf, pixels, spec, out):
    if spec is None:
        with torch.no_grad():
            return out(hf, pixels), None
    hfpatch.apply_patch(hf, build_schedule(spec, DEPTH))
    seen, result = hf_layer_tokens(hf, pixels)
    hfpatch.remove_patch(hf)
    return out(hf, pixels, result), [o for _, o in seen]


@pytest.mark.parametrize("spec", SPECS, ids=["dense", "all-0.75", "0,2-mixed"])
def test_vit_timm_equals_transformers(vit_pair, pixels, spec):
    tm, hf = vit_pair
    t_logits, t_counts = run_timm(tm, pixels, spec, lambda m, x: m(x))
    h_logits, h_counts = run_hf(hf, pixels, spec, lambda m, x, r=None: (r if r is not None else m(pixel_values=x)).logits)
    assert t_counts == h_counts
    if spec is not None:
        assert t_counts[-1] < 197, "redundant inputs must prune something"
    ok, diff = close(t_logits, h_logits)
    assert ok, f"max abs diff {diff}"


@pytest.mark.parametrize("spec", SPECS, ids=["dense", "all-0.75", "0,2-mixed"])
def test_dinov2_timm_equals_transformers(dinov2_pair, pixels, spec):
    tm, hf = dinov2_pair
    t_out, t_counts = run_timm(tm, pixels, spec, lambda m, x: m.forward_features(x))
    h_out, h_counts = run_hf(hf, pixels, spec, lambda m, x, r=None: (r if r is not None else m(pixel_values=x)).last_hidden_state)
    assert t_counts == h_counts
    if spec is not None:
        assert t_counts[-1] < 257, "redundant inputs must prune something"
    assert t_out.shape == h_out.shape
    ok, diff = close(t_out, h_out)
    assert ok, f"max abs diff {diff}"
