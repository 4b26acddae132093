"""SAINT's drop rule as torch custom ops: ``saint::token_drop`` (batch vote) and
``saint::token_drop_sample`` (per-sample vote with a key-padding mask).

The op is opaque to tracers: ``torch.export`` and the dynamo ONNX exporter see
one node whose output token count is a fresh symbolic size, so the exported
graph keeps the count data-dependent. Its eager kernel is :func:`saint_export.reference.rule.saint_drop`.
"""

from __future__ import annotations

import contextlib

import torch

from .rule import saint_drop, saint_drop_per_sample
from .schedule import LayerRule

NAMESPACE = "saint"
OP_NAME = "token_drop"
QUALNAME = f"{NAMESPACE}::{OP_NAME}"
SAMPLE_QUALNAME = f"{NAMESPACE}::{OP_NAME}_sample"


@torch.library.custom_op(QUALNAME, mutates_args=())
def token_drop(tokens: torch.Tensor, metric: torch.Tensor, *, threshold: float, k: int, gamma: float, protected: int,
               fixed_r: int) -> tuple[torch.Tensor, torch.Tensor]:
    """tokens [B, N, C], metric [B, N, D] -> (tokens [B, M, C], kept_index [B, M] int64), M = N - r.
    The rule's fields are keyword arguments: an op's schema holds primitives only."""
    out, kept, r = saint_drop(tokens, metric, LayerRule(threshold, k, gamma, fixed_r), protected)
    # custom ops may not return a view of an input
    return (out.clone() if r == 0 else out), kept


def fixed_kept_count(n: int, protected: int, fixed_r: int) -> int:
    """M = N - min(fixed_r, Na) for a fixed_r layer (Na = ceil((N - P) / 2); nothing drops when N - P < 2)."""
    free = n - protected
    na = (free + 1) // 2 if free >= 2 else 0
    return n - min(fixed_r, na)


@token_drop.register_fake
def _token_drop_fake(tokens, metric, *, threshold, k, gamma, protected, fixed_r):
    """The token count is a fresh symbolic size when voted; static when fixed_r and N are known."""
    batch, n, c = tokens.shape
    if fixed_r >= 0 and isinstance(n, int):
        m = fixed_kept_count(n, protected, fixed_r)
    else:
        m = torch.library.get_ctx().new_dynamic_size()
        torch._check(m <= n)
        torch._check(m >= protected)
    return tokens.new_empty((batch, m, c)), tokens.new_empty((batch, m), dtype=torch.int64)


@torch.library.custom_op(SAMPLE_QUALNAME, mutates_args=())
def token_drop_sample(tokens: torch.Tensor, metric: torch.Tensor, mask: torch.Tensor, *, threshold: float, k: int, gamma: float,
                      protected: int, fixed_r: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """tokens [B, N, C], metric [B, N, D], mask [B, N] bool -> (tokens [B, M, C], kept_index [B, M], mask [B, M])."""
    return tuple(saint_drop_per_sample(tokens, metric, mask, LayerRule(threshold, k, gamma, fixed_r), protected))


@token_drop_sample.register_fake
def _token_drop_sample_fake(tokens, metric, mask, *, threshold, k, gamma, protected, fixed_r):
    """M is the longest sample after its own vote: always a fresh symbolic size."""
    batch, n, c = tokens.shape
    m = torch.library.get_ctx().new_dynamic_size()
    torch._check(m <= n)
    torch._check(m >= max(protected, 1))  # every sample keeps its protected tokens; rows are never empty
    return (tokens.new_empty((batch, m, c)), tokens.new_empty((batch, m), dtype=torch.int64),
            tokens.new_empty((batch, m), dtype=torch.bool))


_RECORDERS: list[list[tuple[torch.Tensor, torch.Tensor]]] = []


def _fields(rule: LayerRule, protected: int) -> dict:
    return {"threshold": float(rule.threshold), "k": int(rule.k), "gamma": float(rule.gamma), "protected": int(protected),
            "fixed_r": int(rule.fixed_r)}


def op_token_drop(tokens, metric, rule: LayerRule, protected: int):
    """Call the registered op through the dispatcher (what traced graphs record)."""
    out, kept = torch.ops.saint.token_drop(tokens, metric, **_fields(rule, protected))
    for rec in _RECORDERS:  # empty unless inside ``recording()`` (never while tracing)
        rec.append((out, kept))
    return out, kept


def op_token_drop_sample(tokens, metric, mask, rule: LayerRule, protected: int):
    """Call ``saint::token_drop_sample`` through the dispatcher; recorded like :func:`op_token_drop`."""
    out, kept, mask_out = torch.ops.saint.token_drop_sample(tokens, metric, mask, **_fields(rule, protected))
    for rec in _RECORDERS:
        rec.append((out, kept))
    return out, kept, mask_out


@contextlib.contextmanager
def recording():
    """Collect (tokens_out, kept_index) of every eager drop in call order, for validation."""
    rec: list[tuple[torch.Tensor, torch.Tensor]] = []
    _RECORDERS.append(rec)
    try:
        yield rec
    finally:
        _RECORDERS.remove(rec)
