"""The transformers patch against stock transformers and against the rule applied by hand.

Small random models built from configs (nothing downloads). Inputs: generated images with real
redundancy plus scikit-image photos (noise prunes nothing)."""

import copy

import pytest
import torch

transformers = pytest.importorskip("transformers", minversion="5.0")

from saint_export import patch  # noqa: E402
from saint_export.models.config import ModelConfig  # noqa: E402
from saint_export.errors import ConfigError  # noqa: E402
from saint_export.reference.patch import transformers as hfpatch  # noqa: E402
from saint_export.reference.rule import saint_drop  # noqa: E402
from saint_export.reference.schedule import build_schedule  # noqa: E402

from helpers import hf_layer_tokens, redundant_batch  # noqa: E402

T = transformers
SMALL = dict(hidden_size=64, num_hidden_layers=4, num_attention_heads=4, image_size=224, patch_size=16)

BUILDERS = {
    "vit": lambda: T.ViTForImageClassification(T.ViTConfig(intermediate_size=128, num_labels=10, **SMALL)),
    "vit_model": lambda: T.ViTModel(T.ViTConfig(intermediate_size=128, **SMALL)),
    "deit": lambda: T.DeiTForImageClassification(T.DeiTConfig(intermediate_size=128, num_labels=10, **SMALL)),
    "deit_teacher": lambda: T.DeiTForImageClassificationWithTeacher(T.DeiTConfig(intermediate_size=128, num_labels=10, **SMALL)),
    "dinov2": lambda: T.Dinov2Model(T.Dinov2Config(mlp_ratio=2, **SMALL)),
    "dinov2_reg": lambda: T.Dinov2WithRegistersModel(T.Dinov2WithRegistersConfig(mlp_ratio=2, num_register_tokens=4, **SMALL)),
    "dinov2_cls": lambda: T.Dinov2ForImageClassification(T.Dinov2Config(mlp_ratio=2, num_labels=10, **SMALL)),
    "dinov2_reg_cls": lambda: T.Dinov2WithRegistersForImageClassification(
        T.Dinov2WithRegistersConfig(mlp_ratio=2, num_register_tokens=4, num_labels=10, **SMALL)),
    "clip": lambda: T.CLIPVisionModel(T.CLIPVisionConfig(intermediate_size=128, **SMALL)),
    "clip_proj": lambda: T.CLIPVisionModelWithProjection(T.CLIPVisionConfig(intermediate_size=128, projection_dim=32, **SMALL)),
    "siglip": lambda: T.SiglipVisionModel(T.SiglipVisionConfig(intermediate_size=128, **SMALL)),
}
PROTECTED = {"vit": 1, "vit_model": 1, "deit": 2, "deit_teacher": 2, "dinov2": 1, "dinov2_reg": 5, "dinov2_cls": 1, "dinov2_reg_cls": 5, "clip": 1, "clip_proj": 1, "siglip": 0}


def build(name, seed=0):
    torch.manual_seed(seed)
    return BUILDERS[name]().eval()


def outputs(out):
    """Every tensor of a ModelOutput (last_hidden_state, pooler_output, logits, image_embeds...)."""
    return {k: v for k, v in out.items() if isinstance(v, torch.Tensor)}


@pytest.fixture(scope="module")
def pixels():
    return redundant_batch()


# ---------------------------------------------------------------- by-hand reference

def attention_half(layer, x):
    """Stock submodules only: (hidden states after the attention residual, keys averaged over heads)."""
    kind = type(layer).__name__
    if kind in ("ViTLayer", "DeiTLayer"):
        norm, attn = layer.layernorm_before, layer.attention
    elif kind.startswith("Dinov2"):
        norm, attn = layer.norm1, layer.attention
    else:
        norm, attn = layer.layer_norm1, layer.self_attn
    y = norm(x)
    B, N, _ = y.shape
    keys = attn.k_proj(y).reshape(B, N, -1, attn.head_dim).permute(0, 2, 1, 3).mean(1)
    out = attn(y)[0]
    if kind in ("ViTLayer", "DeiTLayer"):
        return x + layer.dropout(out), keys
    if kind.startswith("Dinov2"):
        return x + layer.drop_path(layer.layer_scale1(out)), keys
    return x + out, keys


def mlp_half(layer, x):
    kind = type(layer).__name__
    if kind in ("ViTLayer", "DeiTLayer"):
        return x + layer.dropout(layer.mlp(layer.layernorm_after(x)))
    if kind.startswith("Dinov2"):
        return x + layer.drop_path(layer.layer_scale2(layer.mlp(layer.norm2(x))))
    return x + layer.mlp(layer.layer_norm2(x))


@torch.no_grad()
def reference(stock, layers, pixels, rules, protected):
    """Run the unpatched ``stock`` model with every scheduled layer's output replaced by the
    rule applied by hand. Returns (outputs, tokens after each layer, kept_index per pruning layer)."""
    counts, kept_all, hooks = [], [], []
    for i, layer in enumerate(layers):
        def hook(mod, args, out, i=i):
            if i in rules:
                x, keys = attention_half(mod, args[0])
                r = rules[i]
                x, kept, _ = saint_drop(x, keys, r, protected)
                kept_all.append(kept)
                out = mlp_half(mod, x)
            counts.append(out.shape[1])
            return out
        hooks.append(layer.register_forward_hook(hook))
    try:
        out = stock(pixel_values=pixels)
    finally:
        for h in hooks:
            h.remove()
    return outputs(out), counts, kept_all


# ---------------------------------------------------------------- tests

@torch.no_grad()
@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_pruning_off_equals_stock_bit_for_bit(pixels, name):
    model = build(name)
    stock = copy.deepcopy(model)
    ref = outputs(stock(pixel_values=pixels))
    hfpatch.apply_patch(model, build_schedule({"layers": "all", "threshold": 0.5}, 4))
    assert hfpatch.protected_tokens(model) == PROTECTED[name]
    with patch.pruning(model, False):
        off = outputs(model(pixel_values=pixels))
    assert off.keys() == ref.keys() and all(torch.equal(off[k], ref[k]) for k in ref)
    seen, _ = hf_layer_tokens(model, pixels)  # pruning is back on after the context manager
    assert seen[-1][1] < seen[0][0]
    # a pruning layer whose rule drops nothing runs the same arithmetic as the stock layer
    hfpatch.apply_patch(model, build_schedule({"layers": "all", "fixed_r": 0}, 4))
    same = outputs(model(pixel_values=pixels))
    assert all(torch.equal(same[k], ref[k]) for k in ref)


@torch.no_grad()
@pytest.mark.parametrize("name,spec", [
    ("vit", {"layers": "first_half", "threshold": 0.75, "k": 5, "gamma": 10.0}),
    ("vit_model", {"layers": [0, 1, 3], "threshold": [0.6, 0.7, 0.8], "k": [3, 5, 7]}),
    ("deit_teacher", {"layers": "all", "threshold": 0.6, "k": 2}),
    ("dinov2", {"layers": "all", "fixed_r": [10, 0, 30, 5]}),
    ("dinov2_reg", {"layers": "all", "threshold": 0.6, "k": 2}),
    ("clip_proj", {"layers": "first_half", "threshold": 0.7, "k": 3}),
    ("siglip", {"layers": "all", "threshold": 0.6, "k": 2}),
])
def test_token_counts_and_outputs_match_rule_by_hand(pixels, name, spec):
    model = build(name)
    stock = copy.deepcopy(model)
    schedule = build_schedule(spec, 4)
    hfpatch.apply_patch(model, schedule)
    seen, out = hf_layer_tokens(model, pixels)
    got = outputs(out)
    protected = PROTECTED[name]
    ref, counts, kept = reference(stock, hfpatch.saint_layers(stock), pixels, schedule.as_dict(), protected)
    assert [o for _, o in seen] == counts
    assert counts[-1] < counts[0] + (0 if 0 in schedule.layers else 1) and counts[-1] < seen[0][0], "redundant inputs must prune something"
    assert got.keys() == ref.keys()
    for key in ref:
        assert torch.allclose(got[key], ref[key], atol=1e-5, rtol=1e-5), key
    for k in kept:
        assert torch.equal(k[:, :protected], torch.arange(protected).expand(k.shape[0], -1))


@torch.no_grad()
def test_clip_patches_instances_not_the_shared_class(pixels):
    from transformers.models.clip.modeling_clip import CLIPEncoderLayer

    forward = CLIPEncoderLayer.forward
    vision = build("clip")
    torch.manual_seed(0)
    text = T.CLIPTextModel(T.CLIPTextConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, vocab_size=99, bos_token_id=0, eos_token_id=1, pad_token_id=1)).eval()
    ids = torch.randint(0, 99, (2, 7))
    text_before = text(input_ids=ids).last_hidden_state
    hfpatch.apply_patch(vision, build_schedule({"layers": [1, 2]}, 4))
    layers = hfpatch.saint_layers(vision)
    assert CLIPEncoderLayer.forward is forward
    assert all(isinstance(layer, CLIPEncoderLayer) and type(layer) is not CLIPEncoderLayer for layer in layers)
    assert [layer._saint_rule is not None for layer in layers] == [False, True, True, False]
    assert all(type(layer) is CLIPEncoderLayer for layer in text.encoder.layers)
    assert torch.equal(text(input_ids=ids).last_hidden_state, text_before)


@torch.no_grad()
def test_weights_untouched_and_patch_reversible(pixels):
    model = build("dinov2_reg")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    classes = [type(layer) for layer in hfpatch.saint_layers(model)]
    stock_out = model(pixel_values=pixels).pooler_output
    hfpatch.apply_patch(model)
    assert patch.is_patched(model) and model.state_dict().keys() == before.keys()
    patch.remove_patch(model)  # the shared helper dispatches to the transformers patch
    assert not patch.is_patched(model)
    assert [type(layer) for layer in hfpatch.saint_layers(model)] == classes
    assert not any(layer.attention.k_proj._forward_hooks for layer in hfpatch.saint_layers(model))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert torch.equal(model(pixel_values=pixels).pooler_output, stock_out)


def test_deepcopy_of_patched_model_is_independent(pixels):
    model = hfpatch.apply_patch(build("vit"), build_schedule({"layers": "all", "threshold": 0.6, "k": 2}, 4))
    twin = copy.deepcopy(model)
    with torch.no_grad():
        assert torch.equal(twin(pixel_values=pixels).logits, model(pixel_values=pixels).logits)


@torch.no_grad()
def test_refused_cases_fail_in_one_line(pixels):
    model = hfpatch.apply_patch(build("vit_model"), build_schedule({"layers": "all"}, 4))
    mask = torch.ones(pixels.shape[0], 197, dtype=torch.bool)
    mask[:, -3:] = False
    with pytest.raises(ConfigError, match="attention mask"):
        model(pixel_values=pixels, attention_mask=mask)
    with pytest.raises(ConfigError, match="output_attentions"):
        model(pixel_values=pixels, output_attentions=True)
    model.set_attn_implementation("eager")  # transformers allows output_attentions in the config only with eager
    model.config.output_attentions = True  # via the config, not a kwarg
    with pytest.raises(ConfigError, match="output_attentions"):
        model(pixel_values=pixels)
    model.config.output_attentions = False
    with patch.pruning(model, False):  # dense runs may use both
        assert model(pixel_values=pixels, attention_mask=mask).last_hidden_state.shape[1] == 197
    with pytest.raises(ConfigError, match="layers 0..3"):
        hfpatch.apply_patch(build("vit"), build_schedule({"layers": [5]}, 8))
    with pytest.raises(ConfigError, match="not Dinov2Backbone"):
        hfpatch.apply_patch(T.Dinov2Backbone(T.Dinov2Config(mlp_ratio=2, out_features=["stage4"], **SMALL)))
    with pytest.raises(ConfigError, match="not CLIPTextModel"):
        hfpatch.apply_patch(T.CLIPTextModel(T.CLIPTextConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4)))
    with pytest.raises(ConfigError, match="not Linear"):
        hfpatch.apply_patch(torch.nn.Linear(2, 2))


def test_export_tiny_hf_vit_to_onnx_with_parity(tmp_path, pixels):
    import onnx

    from saint_export.export.pipeline import onnx_models_from_torch
    from saint_export.models.build import BuiltModel
    from saint_export.verify.validate import validate_onnx

    schedule = build_schedule({"layers": "0-2", "threshold": [0.75, 0.7, 0.75], "k": [5, 4, 5]}, 4)
    model = hfpatch.apply_patch(hfpatch.TensorOutput(build("vit")), schedule)
    cfg = ModelConfig(alias="hf_tiny_vit", name="hf:ViTForImageClassification", mean=(0.5,) * 3, std=(0.5,) * 3, hub_weights=False)
    built = BuiltModel(cfg, model, schedule, model._saint_protected, "random(seed=0)")
    result = onnx_models_from_torch(built, tmp_path / "hf.onnx", tmp_path / "hf.trt.onnx")
    assert result.drop_nodes == 3
    proto = onnx.load(str(result.portable))
    drops = [n for n in proto.graph.node if n.domain == "saint"]
    assert [n.op_type for n in drops] == ["SaintTokenDrop"] * 3
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in drops[1].attribute}
    assert attrs == {"threshold": pytest.approx(0.7), "k": 4, "gamma": 10.0, "protected": 1, "fixed_r": -1}
    report = validate_onnx(result.portable, built, pixels, [f"img{i}" for i in range(len(pixels))])
    assert report.passed, report.table()
    assert report.tokens_torch == report.tokens_onnx and report.tokens_torch[-1] < 197


def test_build_hf_model_from_a_local_folder_and_offline_hub_id(tmp_path, pixels):
    from saint_export.errors import InputError, MissingDependencyError
    from saint_export.models.hf import build_hf, hf_config_for

    def build_hf_model(path_or_id, overrides=None):
        return build_hf(hf_config_for(str(path_or_id)), "pretrained", overrides=overrides)

    stock = build("vit")
    stock.save_pretrained(tmp_path / "vit")
    built = build_hf_model(tmp_path / "vit", overrides={"layers": "all", "threshold": 0.6, "k": 2})
    assert built.config.source_name == f"hf:{(tmp_path / 'vit').resolve()}" and built.protected == 1 and built.schedule.layers == [0, 1, 2, 3]
    with torch.no_grad():
        with patch.pruning(built.module, False):
            assert torch.equal(built.module(pixels), stock(pixel_values=pixels).logits)
        seen, logits = hf_layer_tokens(built.module, pixels)
    assert logits.shape == (len(pixels), 10) and seen[-1][1] < 197
    with pytest.raises(MissingDependencyError, match="offline") as info:
        build_hf_model("no-such-org/no-such-model-saint-test")
    assert "\n" not in str(info.value)
    with pytest.raises(InputError, match="cannot load"):
        build_hf_model(tmp_path)  # a folder without a model
