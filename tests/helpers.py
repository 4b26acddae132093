"""Small models and redundant inputs shared by the tests (no hub, no network)."""

from __future__ import annotations

import timm
import torch

from saint_export.models.config import ModelConfig
from saint_export.inputs import photos, preprocess, synthetic_images
from saint_export.reference.rule import saint_drop

TINY = ModelConfig(alias="tiny", timm_name="vit_tiny_patch16_224", model_kwargs={"depth": 4}, mean=(0.5,) * 3, std=(0.5,) * 3)


def tiny_vit(name: str = "vit_tiny_patch16_224", seed: int = 0, **kwargs) -> torch.nn.Module:
    torch.manual_seed(seed)
    kwargs.setdefault("depth", 4)
    return timm.create_model(name, pretrained=False, **kwargs).eval()


def redundant_batch(n_synthetic: int = 4, with_photos: bool = True, size: int = 224) -> torch.Tensor:
    """Generated images with flat regions / repeated tiles, plus scikit-image photos."""
    cfg = ModelConfig(alias="x", timm_name="x", input_size=size, mean=(0.5,) * 3, std=(0.5,) * 3)
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
            x, kept, _ = saint_drop(x, k.mean(1), rule.threshold, rule.k, rule.gamma, protected, rule.fixed_r)
            kept_all.append(kept)
            x = x + blk.drop_path2(blk.ls2(blk.mlp(blk.norm2(x))))
        counts.append(x.shape[1])
    return model.forward_head(model.norm(x)), counts, kept_all
