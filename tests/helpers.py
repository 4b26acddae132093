"""Small models and redundant inputs shared by the tests (no hub, no network)."""

from __future__ import annotations

import timm
import torch

from saint_export.models.config import ModelConfig
from saint_export.inputs import photos, preprocess, synthetic_images
from saint_export.reference.rule import saint_drop
from saint_export.reference.schedule import LayerRule

TINY = ModelConfig(alias="tiny", name="vit_tiny_patch16_224", model_kwargs={"depth": 4}, mean=(0.5,) * 3, std=(0.5,) * 3)


def tiny_vit(name: str = "vit_tiny_patch16_224", seed: int = 0, **kwargs) -> torch.nn.Module:
    torch.manual_seed(seed)
    kwargs.setdefault("depth", 4)
    return timm.create_model(name, pretrained=False, **kwargs).eval()


def redundant_batch(n_synthetic: int = 4, with_photos: bool = True, size: int = 224) -> torch.Tensor:
    """Generated images with flat regions / repeated tiles, plus scikit-image photos."""
    cfg = ModelConfig(alias="x", name="x", input_size=size, mean=(0.5,) * 3, std=(0.5,) * 3)
    images = synthetic_images(n_synthetic, size) + (photos() if with_photos else [])
    return preprocess(images, cfg)


@torch.no_grad()
def reference_forward(model, pixels, rules: dict, protected: int):
    """The patched model's computation written out by hand with stock timm modules and the
    pure rule. Returns (logits, [tokens after each block], [kept_index per pruning block])."""
    x = model.norm_pre(model.patch_drop(model._pos_embed(model.patch_embed(pixels))))
    counts, kept_all = [], []
    for i, blk in enumerate(model.blocks):
        if i not in rules:
            x = blk(x)
        else:
            y = blk.norm1(x)
            attn = blk.attn
            B, N, _ = y.shape
            k = attn.k_norm(attn.qkv(y).reshape(B, N, 3, attn.num_heads, attn.head_dim).permute(2, 0, 3, 1, 4)[1])
            x = x + blk.drop_path1(blk.ls1(attn(y)))
            rule = rules[i]
            x, kept, _ = saint_drop(x, k.mean(1), rule, protected)
            kept_all.append(kept)
            x = x + blk.drop_path2(blk.ls2(blk.mlp(blk.norm2(x))))
        counts.append(x.shape[1])
    return model.forward_head(model.norm(x)), counts, kept_all


# a 2-block ViT-Ti YAML: the quickest whole model for command-line tests
TINY_YAML = """\
alias: tiny2
timm_name: vit_tiny_patch16_224
model_kwargs: {depth: 2}
mean: [0.5, 0.5, 0.5]
std: [0.5, 0.5, 0.5]
schedule: {layers: all, threshold: 0.75}
"""

# a tiny random LLaVA (4-layer CLIP tower, 4-layer Llama) with the published settings' shape
LLAVA_IMAGE_TOKEN = 100
LLAVA_TINY = {
    "alias": "llava_tiny", "hf_name": "llava-hf/llava-1.5-7b-hf", "weights": "random", "input_size": 56,
    "mean": [0.5] * 3, "std": [0.5] * 3, "crop_pct": 1.0,
    "model_kwargs": {"model_type": "llava", "image_token_index": LLAVA_IMAGE_TOKEN, "image_seq_length": 64,
                     "vision_feature_layer": -2, "pad_token_id": 0,
                     "vision_config": {"model_type": "clip_vision_model", "hidden_size": 32, "intermediate_size": 64,
                                       "num_hidden_layers": 4, "num_attention_heads": 2, "image_size": 56, "patch_size": 7},
                     "text_config": {"model_type": "llama", "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 4,
                                     "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 128,
                                     "max_position_embeddings": 256, "pad_token_id": 0}},
    "llava": {"mode": "hybrid", "vit_layer": 1, "keep": 30, "divisor": 4, "llm_start": 1, "llm_end": 2, "llm_threshold": 0.5},
}


def one_plugin_case():
    """tokens [4, 197, 192] and a metric with repeated rows (real redundancy), and the reference drop."""
    torch.manual_seed(0)
    metric = torch.randn(4, 197, 64)
    metric[:, 1::3] = metric[:, 2:3]
    tokens = torch.randn(4, 197, 192)
    return tokens, metric, saint_drop(tokens, metric, LayerRule(threshold=0.75, k=5, gamma=10.0, fixed_r=-1), 1)


@torch.no_grad()
def hf_layer_tokens(model: torch.nn.Module, pixels: torch.Tensor):
    """A transformers model (patched or not) on ``pixels``: [(tokens in, tokens out) per encoder layer] and its output."""
    from saint_export.reference.patch.transformers import TensorOutput, saint_layers

    seen: list[tuple[int, int]] = []
    hooks = [layer.register_forward_hook(lambda mod, args, out: seen.append((int(args[0].shape[1]), int(out.shape[1]))))
             for layer in saint_layers(model)]
    try:
        out = model(pixels) if isinstance(model, TensorOutput) else model(pixel_values=pixels)
    finally:
        for h in hooks:
            h.remove()
    return seen, out


def as_rule(threshold: float = 0.75, k: int = 5, gamma: float = 10.0, protected: int = 1, fixed_r: int = -1):
    """(LayerRule, protected) from the rule's fields as keywords: a test's parameter dict, spread into a drop call."""
    return LayerRule(threshold, k, gamma, fixed_r), protected
