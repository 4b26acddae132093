"""The timm patch against stock timm and against the rule applied by hand."""

import copy

import pytest
import torch

from saint_export import patch
from saint_export.verify.analysis import trace_tokens
from saint_export.errors import ConfigError
from saint_export.reference.ops import op_token_drop
from saint_export.reference.rule import saint_drop
from saint_export.reference.schedule import build_schedule

from helpers import redundant_batch, reference_forward, tiny_vit
from saint_export.reference.schedule import LayerRule  # noqa: E402


@pytest.fixture(scope="module")
def pixels():
    return redundant_batch()


@torch.no_grad()
def test_pruning_off_equals_stock_bit_for_bit(pixels):
    model = tiny_vit()
    stock = copy.deepcopy(model)
    patch.timm(model, build_schedule({"layers": "all", "threshold": 0.5}, 4))
    patch.set_pruning(model, False)
    assert torch.equal(model(pixels), stock(pixels))
    # a pruning block whose rule drops nothing runs the same arithmetic as stock timm
    patch.timm(model, build_schedule({"layers": "all", "fixed_r": 0}, 4))
    assert torch.equal(model(pixels), stock(pixels))


@torch.no_grad()
def test_weights_untouched_and_patch_reversible(pixels):
    model = tiny_vit()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    classes = [type(b) for b in model.blocks]
    stock_out = model(pixels)
    patch.timm(model)
    assert patch.is_patched(model)
    assert model(pixels).shape == stock_out.shape
    patch.remove_patch(model)
    assert not patch.is_patched(model)
    assert [type(b) for b in model.blocks] == classes
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert torch.equal(model(pixels), stock_out)


@torch.no_grad()
@pytest.mark.parametrize("spec", [
    {"layers": "first_half", "threshold": 0.75, "k": 5, "gamma": 10.0},
    {"layers": [0, 1, 3], "threshold": [0.6, 0.7, 0.8], "k": [3, 5, 7]},
    {"layers": "all", "fixed_r": [10, 0, 30, 5]},
])
def test_token_counts_match_rule_by_hand(pixels, spec):
    model = tiny_vit()
    schedule = build_schedule(spec, 4)
    patch.timm(model, schedule)
    blocks, logits = trace_tokens(model, pixels)
    patch.set_pruning(model, False)
    ref_logits, ref_counts, _ = reference_forward(model, pixels, schedule.as_dict(), protected=1)
    assert [b.tokens_out for b in blocks] == ref_counts
    assert torch.allclose(logits, ref_logits, atol=1e-5, rtol=1e-5)
    assert blocks[-1].tokens_out < 197, "redundant inputs must prune something"


@torch.no_grad()
@pytest.mark.parametrize("name,kwargs,protected", [
    ("deit_tiny_distilled_patch16_224", {}, 2),
    ("vit_small_patch14_reg4_dinov2", {"img_size": 112, "num_classes": 10}, 5),
])
def test_protected_tokens_beyond_class_token(name, kwargs, protected):
    model = tiny_vit(name, **kwargs)
    assert patch.protected_tokens(model) == protected
    size = kwargs.get("img_size", 224)
    pixels = redundant_batch(size=size)
    schedule = build_schedule({"layers": "all", "threshold": 0.6, "k": 2}, 4)
    patch.timm(model, schedule)
    blocks, logits = trace_tokens(model, pixels)
    patch.set_pruning(model, False)
    ref_logits, counts, kept = reference_forward(model, pixels, schedule.as_dict(), protected)
    assert [b.tokens_out for b in blocks] == counts
    assert torch.allclose(logits, ref_logits, atol=1e-5, rtol=1e-5)
    for k in kept:
        assert torch.equal(k[:, :protected], torch.arange(protected).expand(k.shape[0], -1))


def test_custom_op_equals_pure_function():
    torch.manual_seed(0)
    metric = torch.randn(3, 197, 64)
    metric[:, 5::4] = metric[:, 1:2]  # duplicates
    tokens = torch.randn(3, 197, 192)
    for fixed_r in (-1, 0, 40):
        out, kept = op_token_drop(tokens, metric, LayerRule(threshold=0.7, k=2, gamma=10.0, fixed_r=fixed_r), 1)
        ref = saint_drop(tokens, metric, LayerRule(threshold=0.7, k=2, gamma=10.0, fixed_r=fixed_r), 1)
        assert torch.equal(out, ref.tokens) and torch.equal(kept, ref.kept_index)
        assert out.data_ptr() != tokens.data_ptr()


def test_unsupported_models_fail_clearly():
    with pytest.raises(ConfigError, match="blocks 0..3"):
        patch.timm(tiny_vit(), build_schedule({"layers": [0]}, 4).__class__.from_rules({7: build_schedule(None, 16).as_dict()[7]}))
    with pytest.raises(ConfigError, match="VisionTransformer"):
        patch.timm(torch.nn.Linear(2, 2), build_schedule(None, 2))


@pytest.mark.parametrize("model", ["vit", None, torch.nn.Linear(2, 2)], ids=["str", "None", "Linear"])
def test_patch_refuses_what_is_not_a_vit(model):
    with pytest.raises(ConfigError, match="supports VisionTransformer models, not"):
        patch.timm(model)


def test_patch_refuses_a_resnet():
    import timm

    with pytest.raises(ConfigError, match="not ResNet"):
        patch.timm(timm.create_model("resnet18", pretrained=False))


@pytest.mark.parametrize("kwargs,needle", [
    ({"schedule": "fast"}, "schedule must be a Schedule"),
    ({"protected": "a"}, "protected must be an integer >= 0"),
    ({"protected": -1}, "protected must be an integer >= 0"),
    ({"protected": 1.5}, "protected must be an integer >= 0"),
])
def test_bad_patch_arguments_keep_the_existing_patch(kwargs, needle):
    model = patch.timm(tiny_vit(), build_schedule({"layers": [0]}, 4))
    with pytest.raises(ConfigError, match=needle):
        patch.timm(model, **kwargs)
    assert patch.is_patched(model) and model._saint_schedule.layers == [0]
    assert type(model.blocks[0]).__name__ != "Block"  # block 0 still prunes


def test_set_pruning_and_remove_patch_refuse_bad_arguments():
    model = patch.timm(tiny_vit())
    with pytest.raises(TypeError, match="True or False"):
        patch.set_pruning(model, "no")
    with pytest.raises(TypeError, match="torch.nn.Module"):
        patch.remove_patch("x")
    assert patch.is_patched(model)
