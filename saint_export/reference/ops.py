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

NAMESPACE = "saint"
OP_NAME = "token_drop"
QUALNAME = f"{NAMESPACE}::{OP_NAME}"
SAMPLE_QUALNAME = f"{NAMESPACE}::{OP_NAME}_sample"


@torch.library.custom_op(QUALNAME, mutates_args=())
def token_drop(
    tokens: torch.Tensor,
    metric: torch.Tensor,
    threshold: float,
    k: int,
    gamma: float,
    protected: int,
    fixed_r: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """tokens [B, N, C], metric [B, N, D] -> (tokens [B, M, C], kept_index [B, M] int64), M = N - r."""
    out, kept, r = saint_drop(tokens, metric, threshold, k, gamma, protected, fixed_r)
    # custom ops may not return a view of an input
    return (out.clone() if r == 0 else out), kept


def fixed_kept_count(n: int, protected: int, fixed_r: int) -> int:
    """M = N - min(fixed_r, Na) for a fixed_r layer (Na = ceil((N - P) / 2); nothing drops when N - P < 2)."""
    free = n - protected
    na = (free + 1) // 2 if free >= 2 else 0
    return n - min(fixed_r, na)


@token_drop.register_fake
def _token_drop_fake(tokens, metric, threshold, k, gamma, protected, fixed_r):
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
def token_drop_sample(
    tokens: torch.Tensor,
    metric: torch.Tensor,
    mask: torch.Tensor,
    threshold: float,
    k: int,
    gamma: float,
    protected: int,
    fixed_r: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """tokens [B, N, C], metric [B, N, D], mask [B, N] bool -> (tokens [B, M, C], kept_index [B, M], mask [B, M])."""
    return tuple(saint_drop_per_sample(tokens, metric, mask, threshold, k, gamma, protected, fixed_r))


@token_drop_sample.register_fake
def _token_drop_sample_fake(tokens, metric, mask, threshold, k, gamma, protected, fixed_r):
    """M is the longest sample after its own vote: always a fresh symbolic size."""
    batch, n, c = tokens.shape
    m = torch.library.get_ctx().new_dynamic_size()
    torch._check(m <= n)
    torch._check(m >= max(protected, 1))  # every sample keeps its protected tokens; rows are never empty
    return (tokens.new_empty((batch, m, c)), tokens.new_empty((batch, m), dtype=torch.int64),
            tokens.new_empty((batch, m), dtype=torch.bool))


_RECORDERS: list[list[tuple[torch.Tensor, torch.Tensor]]] = []


def op_token_drop(tokens, metric, threshold, k, gamma, protected, fixed_r):
    """Call the registered op through the dispatcher (what traced graphs record)."""
    out, kept = torch.ops.saint.token_drop(tokens, metric, float(threshold), int(k), float(gamma), int(protected), int(fixed_r))
    for rec in _RECORDERS:  # empty unless inside ``recording()`` (never while tracing)
        rec.append((out, kept))
    return out, kept


def op_token_drop_sample(tokens, metric, mask, threshold, k, gamma, protected, fixed_r):
    """Call ``saint::token_drop_sample`` through the dispatcher; recorded like :func:`op_token_drop`."""
    out, kept, mask_out = torch.ops.saint.token_drop_sample(tokens, metric, mask, float(threshold), int(k), float(gamma),
                                                            int(protected), int(fixed_r))
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
