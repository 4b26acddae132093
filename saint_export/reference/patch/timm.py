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
* Per-sample vote (``vote: sample``, not upstream): the model's class is swapped
  too, for a forward that threads a key-padding mask [B, M] from the first
  pruning block through every later block's attention and the pooling, so each
  sample's output equals its run alone. ``forward_features`` then returns the
  padded tokens (padding rows are meaningless).
"""

from __future__ import annotations

import contextlib
import importlib
import numbers
from typing import Iterator, Optional

import torch
import torch.nn.functional as F

from ...errors import ConfigError
from ..ops import op_token_drop, op_token_drop_sample
from ..schedule import LayerRule, Schedule, build_schedule

try:  # timm is a hard dependency of the package, but keep the import error readable
    from timm.layers import Attention
    from timm.models.vision_transformer import Block, VisionTransformer
except ImportError as exc:  # pragma: no cover
    raise ImportError("saint_export.reference.patch.timm needs timm (pip install timm)") from exc


def key_padding_bias(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """mask [B, M] bool (True = real token) -> additive attention bias [B, 1, M, M]: 0 or -inf.

    Expanded over the query dim so tracing never has to decide whether M broadcasts against 1."""
    zero = torch.zeros((), dtype=dtype, device=mask.device)
    bias = torch.where(mask, zero, torch.full((), float("-inf"), dtype=dtype, device=mask.device))[:, None, None, :]
    return bias.expand(mask.shape[0], 1, mask.shape[1], mask.shape[1])


def attention_with_metric(attn: Attention, x: torch.Tensor, bias: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """timm ``Attention.forward`` with an optional additive key bias, also returning keys averaged over heads.

    x [B, N, C], bias [B, 1, N, N] or None -> (out [B, N, C_out], metric [B, N, head_dim])
    """
    B, N, _ = x.shape
    gate = attn.gate(x).sigmoid() if getattr(attn, "gate", None) is not None else None
    qkv = attn.qkv(x).reshape(B, N, 3, attn.num_heads, attn.head_dim).permute(2, 0, 3, 1, 4)
    q, k, v = qkv.unbind(0)
    q, k = attn.q_norm(q), attn.k_norm(k)
    if attn.fused_attn:
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=attn.attn_drop.p if attn.training else 0.0)
    else:
        q = q * attn.scale
        scores = q @ k.transpose(-2, -1)
        weights = (scores if bias is None else scores + bias).softmax(dim=-1)
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

    def forward(self, x: torch.Tensor, attn_mask: Optional[torch.Tensor] = None, is_causal: bool = False,
                token_mask: Optional[torch.Tensor] = None, per_sample: bool = False):
        rule = self._saint_rule
        if rule is None:
            return super().forward(x, attn_mask=attn_mask, is_causal=is_causal)
        if per_sample:
            return self.forward_masked(x, token_mask)
        if attn_mask is not None or is_causal:
            raise ValueError("SAINT pruning cannot be combined with an attention mask")
        out, metric = attention_with_metric(self.attn, self.norm1(x))
        x = x + self.drop_path1(self.ls1(out))
        x, _ = op_token_drop(x, metric, rule, self._saint_protected)
        return x + self.drop_path2(self.ls2(self.mlp(self.norm2(x))))

    def forward_masked(self, x: torch.Tensor, mask: Optional[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-sample vote. x [B, N, C], mask [B, N] bool or None (all real) -> (x [B, M, C], mask [B, M])."""
        rule = self._saint_rule
        bias = None if mask is None else key_padding_bias(mask, x.dtype)
        out, metric = attention_with_metric(self.attn, self.norm1(x), bias)
        x = x + self.drop_path1(self.ls1(out))
        if mask is None:
            mask = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
        x, _, mask = op_token_drop_sample(x, metric, mask, rule, self._saint_protected)
        return x + self.drop_path2(self.ls2(self.mlp(self.norm2(x)))), mask


POOLS_PER_SAMPLE = ("token", "avg", "max", "avgmax")


def masked_pool(x: torch.Tensor, mask: torch.Tensor, pool_type: str, prefix: int) -> torch.Tensor:
    """timm's ``global_pool_nlc`` over real tokens only. x [B, M, C], mask [B, M] -> [B, C]"""
    if pool_type == "token":
        return x[:, 0]
    x, mask = x[:, prefix:], mask[:, prefix:, None]
    mean = torch.where(mask, x, torch.zeros_like(x)).sum(dim=1) / mask.sum(dim=1).to(x.dtype)
    top = torch.where(mask, x, torch.full_like(x, float("-inf"))).amax(dim=1) if pool_type != "avg" else None
    return {"avg": mean, "max": top, "avgmax": None if top is None else 0.5 * (top + mean)}[pool_type]


class _SaintPerSampleMixin:
    """Model forward for the per-sample vote: blocks one by one with the key-padding mask."""

    def forward_features_masked(self, x: torch.Tensor) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        """pixels [B, 3, H, W] -> (tokens [B, M, C] after ``norm``, mask [B, M] or None before any drop)."""
        x = self.norm_pre(self.patch_drop(self._pos_embed(self.patch_embed(x))))
        mask = None
        for block in self.blocks:
            if isinstance(block, _SaintBlockMixin) and block._saint_rule is not None:
                x, mask = block(x, token_mask=mask, per_sample=True)
            else:
                x = block(x) if mask is None else block(x, attn_mask=key_padding_bias(mask, x.dtype))
        return self.norm(x), mask

    def forward_features(self, x: torch.Tensor, attn_mask: Optional[torch.Tensor] = None, is_causal: bool = False) -> torch.Tensor:
        if attn_mask is not None or is_causal:
            raise ValueError("SAINT pruning cannot be combined with an attention mask")
        return self.forward_features_masked(x)[0]

    def forward(self, x: torch.Tensor, attn_mask: Optional[torch.Tensor] = None, is_causal: bool = False) -> torch.Tensor:
        if attn_mask is not None or is_causal:
            raise ValueError("SAINT pruning cannot be combined with an attention mask")
        x, mask = self.forward_features_masked(x)
        if mask is None or self.global_pool == "token":
            return self.forward_head(x)  # the leading (class / distillation) tokens are always real
        x = masked_pool(x, mask, self.global_pool, 0 if self.pool_include_prefix else self.num_prefix_tokens)
        return self.head(self.head_drop(self.fc_norm(x)))


_SAINT_CLASSES: dict[type, type] = {}


def _saint_class(cls: type, mixin: type = _SaintBlockMixin) -> type:
    if (cls, mixin) not in _SAINT_CLASSES:
        _SAINT_CLASSES[cls, mixin] = type(f"Saint{cls.__name__}", (mixin, cls), {"_saint_original": cls})
    return _SAINT_CLASSES[cls, mixin]


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
    if schedule.per_sample:
        later = [b for b in model.blocks[schedule.layers[0]:] if not isinstance(b, Block)]
        if later or getattr(model, "attn_pool", None) is not None or model.global_pool not in POOLS_PER_SAMPLE:
            raise ConfigError(f"vote: sample needs plain timm Blocks after the first pruning block and pooling in "
                              f"{list(POOLS_PER_SAMPLE)}; {type(model).__name__} has global_pool={model.global_pool!r}"
                              + (" and an attention-pool head" if getattr(model, "attn_pool", None) is not None else ""))


def apply_patch(model: VisionTransformer, schedule: Schedule | None = None, protected: int | None = None) -> VisionTransformer:
    """Patch ``model`` in place for SAINT and return it.

    Args:
        model: a timm VisionTransformer (or subclass, e.g. VisionTransformerDistilled).
        schedule: which blocks prune and how; default = the published schedule
            (first half of the blocks, tau 0.75, K 5, gamma 10).
        protected: leading tokens never dropped; default ``model.num_prefix_tokens``.
    """
    if not isinstance(model, VisionTransformer):
        raise ConfigError(f"SAINT's timm patch supports VisionTransformer models, not {type(model).__name__}")
    if schedule is None:
        schedule = build_schedule(None, len(model.blocks))
    if not isinstance(schedule, Schedule):
        raise ConfigError(f"schedule must be a Schedule (build_schedule(spec, depth)) or None; got {type(schedule).__name__} "
                          f"{schedule!r:.40}")
    _check_supported(model, schedule)
    protected = protected_tokens(model) if protected is None else _protected_count(protected)
    if is_patched(model):  # every check passed: only now is the existing patch replaced
        remove_patch(model)
    if schedule.per_sample:
        model.__class__ = _saint_class(type(model), _SaintPerSampleMixin)
    for i, rule in schedule.rules:
        block = model.blocks[i]
        block.__class__ = _saint_class(type(block))
        block._saint_rule = rule
        block._saint_protected = protected
    model._saint_schedule = schedule
    model._saint_protected = protected
    return model


def _protected_count(protected) -> int:
    if isinstance(protected, bool) or not isinstance(protected, numbers.Integral) or protected < 0:
        raise ConfigError(f"protected must be an integer >= 0 (leading tokens never dropped); got {protected!r}")
    return int(protected)


def is_patched(model: torch.nn.Module) -> bool:
    return hasattr(model, "_saint_schedule")


def _other_host(model: torch.nn.Module):
    """The patch module of a model patched by another host library's patch (``model._saint_host``), else None."""
    host = getattr(model, "_saint_host", None)
    return importlib.import_module(f"{__package__}.{host}") if host else None


def set_pruning(model: torch.nn.Module, enabled: bool) -> None:
    """Turn pruning on or off without unpatching (off = stock forward in every block)."""
    if not isinstance(enabled, bool):
        raise TypeError(f"set_pruning: enabled must be True or False; got {enabled!r}")
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
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"remove_patch takes a torch.nn.Module; got {type(model).__name__}")
    if _other_host(model) is not None:
        return _other_host(model).remove_patch(model)
    for block in getattr(model, "blocks", []):
        if isinstance(block, _SaintBlockMixin):
            block.__class__ = block._saint_original
            del block._saint_rule, block._saint_protected
    if isinstance(model, _SaintPerSampleMixin):
        model.__class__ = model._saint_original
    for name in ("_saint_schedule", "_saint_protected"):
        if hasattr(model, name):
            delattr(model, name)
    return model
