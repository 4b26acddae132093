"""State-dict key mapping between timm and Hugging Face transformers (>= 5) for ViT and DINOv2.

=================================  ============================================  ==========================
timm (VisionTransformer)           transformers ViTModel / Dinov2Model           note
=================================  ============================================  ==========================
cls_token                          embeddings.cls_token
pos_embed                          embeddings.position_embeddings                 [1, 1 + grid, D]
patch_embed.proj.{weight,bias}     embeddings.patch_embeddings.projection.*
blocks.i.norm1                     layers.i.layernorm_before / encoder.layer.i.norm1
blocks.i.attn.qkv                  ...attention.{q,k,v}_proj                      fused [3D, D] <-> three [D, D]
blocks.i.attn.proj                 ...attention.o_proj
blocks.i.ls1.gamma / ls2.gamma     encoder.layer.i.layer_scale{1,2}.lambda1       DINOv2 only
blocks.i.norm2                     layers.i.layernorm_after / encoder.layer.i.norm2
blocks.i.mlp.fc{1,2}               ...mlp.fc{1,2}
norm                               layernorm
head                               classifier                                     ViTForImageClassification
=================================  ============================================  ==========================

ViTForImageClassification prefixes the backbone with ``vit.``; ViTModel's pooler has no timm
counterpart (build it with ``add_pooling_layer=False``). Dinov2Model's ``mask_token`` has no timm
counterpart (zeros when going timm -> transformers; dropped the other way).

For identical arithmetic, the transformers config must use timm's LayerNorm eps (1e-6; ViTConfig's
default is 1e-12) and exact GELU (``hidden_act="gelu"``).
"""

from __future__ import annotations

import re
from typing import Mapping

import torch
import torch.nn.functional as F

from ..errors import ConfigError

ARCHS = ("vit", "dinov2")

_BLOCK = {  # timm block suffix -> (vit name, dinov2 name)
    "norm1": ("layernorm_before", "norm1"),
    "norm2": ("layernorm_after", "norm2"),
    "attn.proj": ("attention.o_proj", "attention.o_proj"),
    "mlp.fc1": ("mlp.fc1", "mlp.fc1"),
    "mlp.fc2": ("mlp.fc2", "mlp.fc2"),
    "ls1.gamma": (None, "layer_scale1.lambda1"),
    "ls2.gamma": (None, "layer_scale2.lambda1"),
}
_TOP = {
    "cls_token": "embeddings.cls_token",
    "pos_embed": "embeddings.position_embeddings",
    "patch_embed.proj.weight": "embeddings.patch_embeddings.projection.weight",
    "patch_embed.proj.bias": "embeddings.patch_embeddings.projection.bias",
    "norm.weight": "layernorm.weight",
    "norm.bias": "layernorm.bias",
}


def _layers_prefix(arch: str) -> str:
    if arch not in ARCHS:
        raise ConfigError(f"hf_keys: arch must be one of {ARCHS}; got {arch!r}")
    return "layers" if arch == "vit" else "encoder.layer"


def timm_to_transformers(state: Mapping[str, torch.Tensor], arch: str, prefix: str = "") -> dict[str, torch.Tensor]:
    """timm VisionTransformer state dict -> transformers ViT (``arch="vit"``) / Dinov2 (``"dinov2"``).

    ``prefix``: ``"vit."`` for ViTForImageClassification (then ``head`` becomes ``classifier``).
    """
    layers = _layers_prefix(arch)
    col = 0 if arch == "vit" else 1
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key in _TOP:
            out[prefix + _TOP[key]] = value
            continue
        if key.startswith("head."):
            if not prefix:
                raise ConfigError(f"hf_keys: timm key {key} needs a classification model (prefix='vit.')")
            out["classifier." + key[5:]] = value
            continue
        m = re.fullmatch(r"blocks\.(\d+)\.(.+)\.(weight|bias|gamma)", key)
        if not m:
            raise ConfigError(f"hf_keys: no transformers counterpart for timm key {key!r}")
        i, name, kind = m.groups()
        base = f"{prefix}{layers}.{i}."
        if name == "attn.qkv":
            for part, tensor in zip(("q_proj", "k_proj", "v_proj"), value.chunk(3, dim=0)):
                out[f"{base}attention.{part}.{kind}"] = tensor.clone()
            continue
        full = f"{name}.{kind}" if kind == "gamma" else name
        target = _BLOCK.get(full, (None, None))[col]
        if target is None:
            raise ConfigError(f"hf_keys: no transformers {arch} counterpart for timm key {key!r}")
        out[base + (target if kind == "gamma" else f"{target}.{kind}")] = value
    return out


def transformers_to_timm(state: Mapping[str, torch.Tensor], arch: str, prefix: str = "",
                         grid: tuple[int, int] | None = None) -> dict[str, torch.Tensor]:
    """The inverse of :func:`timm_to_transformers`. ``grid``: resize the position embedding's patch
    part to this (h, w) exactly as transformers' ``interpolate_pos_encoding`` does at run time
    (bicubic, ``align_corners=False``, float32, no antialias; timm's own resampler antialiases and
    would not match)."""
    layers = _layers_prefix(arch)
    col = 0 if arch == "vit" else 1
    inverse_top = {v: k for k, v in _TOP.items()}
    inverse_block = {names[col]: k for k, names in _BLOCK.items() if names[col] is not None}
    out: dict[str, torch.Tensor] = {}
    qkv: dict[tuple[str, str], dict[str, torch.Tensor]] = {}
    for key, value in state.items():
        if key.startswith("classifier."):
            out["head." + key[len("classifier."):]] = value
            continue
        if not key.startswith(prefix):
            raise ConfigError(f"hf_keys: transformers key {key!r} lacks the prefix {prefix!r}")
        key = key[len(prefix):]
        if key == "embeddings.mask_token":
            continue
        if key.startswith("pooler."):
            raise ConfigError("hf_keys: timm has no pooler; build ViTModel with add_pooling_layer=False")
        if key in inverse_top:
            out[inverse_top[key]] = value
            continue
        m = re.fullmatch(re.escape(layers) + r"\.(\d+)\.(.+)", key)
        if not m:
            raise ConfigError(f"hf_keys: no timm counterpart for transformers key {prefix + key!r}")
        i, rest = m.groups()
        q = re.fullmatch(r"attention\.([qkv])_proj\.(weight|bias)", rest)
        if q:
            qkv.setdefault((i, q.group(2)), {})[q.group(1)] = value
            continue
        if rest.endswith(".lambda1"):
            name, kind = rest, None
        else:
            name, kind = rest.rsplit(".", 1)
        source = inverse_block.get(name)
        if source is None:
            raise ConfigError(f"hf_keys: no timm counterpart for transformers key {prefix + key!r}")
        out[f"blocks.{i}.{source}" + (f".{kind}" if kind else "")] = value
    for (i, kind), parts in qkv.items():
        if set(parts) != {"q", "k", "v"}:
            raise ConfigError(f"hf_keys: layer {i} lacks some of q/k/v_proj.{kind}")
        out[f"blocks.{i}.attn.qkv.{kind}"] = torch.cat([parts["q"], parts["k"], parts["v"]], dim=0)
    if grid is not None and "pos_embed" in out:
        out["pos_embed"] = resize_pos_embed(out["pos_embed"], grid)
    return out


def resize_pos_embed(pos: torch.Tensor, grid: tuple[int, int], prefix_tokens: int = 1) -> torch.Tensor:
    """[1, P + g*g, D] -> [1, P + h*w, D], the arithmetic of transformers' Dinov2/ViT
    ``interpolate_pos_encoding`` (square source grid, bicubic, align_corners=False, float32)."""
    h, w = grid
    head, patches = pos[:, :prefix_tokens], pos[:, prefix_tokens:]
    side = int(round(patches.shape[1] ** 0.5))
    if side * side != patches.shape[1]:
        raise ConfigError(f"position embedding has {patches.shape[1]} patch positions, not a square grid")
    if (side, side) == (h, w):
        return pos
    dim = pos.shape[-1]
    grid_pe = patches.reshape(1, side, side, dim).permute(0, 3, 1, 2)
    dtype = grid_pe.dtype
    grid_pe = F.interpolate(grid_pe.to(torch.float32), size=(h, w), mode="bicubic", align_corners=False).to(dtype)
    return torch.cat((head, grid_pe.permute(0, 2, 3, 1).view(1, -1, dim)), dim=1)
