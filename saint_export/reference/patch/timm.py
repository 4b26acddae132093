"""SAINT for timm's VisionTransformer family (ViT, DeiT, DeiT3, CLIP/DINOv2 ViTs, registers).

``apply_patch(model, schedule)`` swaps the class of each scheduled block for a
subclass whose forward computes the attention keys (the metric) and applies
``saint::token_drop`` after the attention residual, before the MLP. Weights are
untouched, blocks outside the schedule keep their stock forward, and
``remove_patch`` restores the original classes.

Differences from upstream SAINT's timm patch:

* The schedule lives on each block as a constant (``block._saint_rule``);
  nothing is popped from per-forward Python lists, so the model traces.
* The metric is the key tensor *after* ``k_norm`` (identity for models without
  QK-norm, so the same as upstream there), averaged over heads: [B, N, head_dim].
* Attention follows the installed timm's ``Attention.forward`` (fused SDPA when
  timm enables it, gating, scale-norm), so unpruned outputs equal stock timm.
* Protected tokens are ``model.num_prefix_tokens`` (class, distillation and
  register tokens) unless given.
"""

from __future__ import annotations

import contextlib
import importlib
from typing import Iterator, Optional

import torch
import torch.nn.functional as F

from ...errors import ConfigError
from ..ops import op_token_drop
from ..schedule import LayerRule, Schedule, build_schedule

try:  # timm is a hard dependency of the package, but keep the import error readable
    from timm.layers import Attention
    from timm.models.vision_transformer import Block, VisionTransformer
except ImportError as exc:  # pragma: no cover
    raise ImportError("saint_export.reference.patch.timm needs timm (pip install timm)") from exc


def attention_with_metric(attn: Attention, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """timm ``Attention.forward`` without masks, also returning keys averaged over heads.

    x [B, N, C] -> (out [B, N, C_out], metric [B, N, head_dim])
    """
    B, N, _ = x.shape
    gate = attn.gate(x).sigmoid() if getattr(attn, "gate", None) is not None else None
    qkv = attn.qkv(x).reshape(B, N, 3, attn.num_heads, attn.head_dim).permute(2, 0, 3, 1, 4)
    q, k, v = qkv.unbind(0)
    q, k = attn.q_norm(q), attn.k_norm(k)
    if attn.fused_attn:
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=attn.attn_drop.p if attn.training else 0.0)
    else:
        q = q * attn.scale
        weights = (q @ k.transpose(-2, -1)).softmax(dim=-1)
        out = attn.attn_drop(weights) @ v
    out = out.transpose(1, 2).reshape(B, N, attn.attn_dim)
    out = attn.norm(out)
    if gate is not None:
        out = out * gate
    out = attn.proj_drop(attn.proj(out))
    return out, k.mean(1)


class _SaintBlockMixin:
    """Forward of a scheduled block. ``_saint_rule`` None -> stock forward (pruning off)."""

    _saint_rule: Optional[LayerRule]
    _saint_protected: int

    def forward(self, x: torch.Tensor, attn_mask: Optional[torch.Tensor] = None, is_causal: bool = False) -> torch.Tensor:
        rule = self._saint_rule
        if rule is None:
            return super().forward(x, attn_mask=attn_mask, is_causal=is_causal)
        if attn_mask is not None or is_causal:
            raise ValueError("SAINT pruning cannot be combined with an attention mask")
        out, metric = attention_with_metric(self.attn, self.norm1(x))
        x = x + self.drop_path1(self.ls1(out))
        x, _ = op_token_drop(x, metric, rule.threshold, rule.k, rule.gamma, self._saint_protected, rule.fixed_r)
        return x + self.drop_path2(self.ls2(self.mlp(self.norm2(x))))


_SAINT_CLASSES: dict[type, type] = {}


def _saint_class(block_cls: type) -> type:
    if block_cls not in _SAINT_CLASSES:
        _SAINT_CLASSES[block_cls] = type(f"Saint{block_cls.__name__}", (_SaintBlockMixin, block_cls), {"_saint_original": block_cls})
    return _SAINT_CLASSES[block_cls]


def protected_tokens(model: torch.nn.Module) -> int:
    """Leading tokens SAINT never drops: class + distillation + register tokens."""
    return int(getattr(model, "num_prefix_tokens", 1 if getattr(model, "cls_token", None) is not None else 0))


def _check_supported(model: torch.nn.Module, schedule: Schedule) -> None:
    if not isinstance(model, VisionTransformer):
        raise ConfigError(f"SAINT's timm patch supports VisionTransformer models, not {type(model).__name__}")
    depth = len(model.blocks)
    for i in schedule.layers:
        if not 0 <= i < depth:
            raise ConfigError(f"schedule names block {i}; the model has blocks 0..{depth - 1}")
        block = model.blocks[i]
        if not isinstance(block, Block) or type(block.attn) is not Attention:
            raise ConfigError(f"block {i} ({type(block).__name__} with {type(block.attn).__name__}) is not a plain timm Block/Attention; SAINT's patch cannot prune it")


def apply_patch(model: VisionTransformer, schedule: Schedule | None = None, protected: int | None = None) -> VisionTransformer:
    """Patch ``model`` in place for SAINT and return it.

    Args:
        model: a timm VisionTransformer (or subclass, e.g. VisionTransformerDistilled).
        schedule: which blocks prune and how; default = the published schedule
            (first half of the blocks, tau 0.75, K 5, gamma 10).
        protected: leading tokens never dropped; default ``model.num_prefix_tokens``.
    """
    if is_patched(model):
        remove_patch(model)
    if schedule is None:
        schedule = build_schedule(None, len(model.blocks))
    _check_supported(model, schedule)
    protected = protected_tokens(model) if protected is None else int(protected)
    if protected < 0:
        raise ConfigError(f"protected must be >= 0; got {protected}")
    for i, rule in schedule.rules:
        block = model.blocks[i]
        block.__class__ = _saint_class(type(block))
        block._saint_rule = rule
        block._saint_protected = protected
    model._saint_schedule = schedule
    model._saint_protected = protected
    return model


def is_patched(model: torch.nn.Module) -> bool:
    return hasattr(model, "_saint_schedule")


def _other_host(model: torch.nn.Module):
    """The patch module of a model patched by another host library's patch (``model._saint_host``), else None."""
    host = getattr(model, "_saint_host", None)
    return importlib.import_module(f"{__package__}.{host}") if host else None


def set_pruning(model: torch.nn.Module, enabled: bool) -> None:
    """Turn pruning on or off without unpatching (off = stock forward in every block)."""
    if not is_patched(model):
        raise ValueError("model is not patched for SAINT")
    if _other_host(model) is not None:
        return _other_host(model)._set_pruning(model, enabled)
    rules = model._saint_schedule.as_dict()
    for i, block in enumerate(model.blocks):
        if isinstance(block, _SaintBlockMixin):
            block._saint_rule = rules[i] if enabled else None


@contextlib.contextmanager
def pruning(model: torch.nn.Module, enabled: bool) -> Iterator[None]:
    """``with pruning(model, False):`` runs the stock forward; pruning is back on afterwards, even on error."""
    set_pruning(model, enabled)
    try:
        yield
    finally:
        set_pruning(model, True)


def remove_patch(model: torch.nn.Module) -> torch.nn.Module:
    """Undo :func:`apply_patch`: original block classes, no SAINT attributes."""
    if _other_host(model) is not None:
        return _other_host(model).remove_patch(model)
    for block in getattr(model, "blocks", []):
        if isinstance(block, _SaintBlockMixin):
            block.__class__ = block._saint_original
            del block._saint_rule, block._saint_protected
    for name in ("_saint_schedule", "_saint_protected"):
        if hasattr(model, name):
            delattr(model, name)
    return model
