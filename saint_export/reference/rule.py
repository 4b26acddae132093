"""The SAINT drop rule (ViT mode), as one pure function over tensors.

This file is the reference every other implementation of the toolkit (the
torch custom op, the ONNX function, the CUDA kernels, the TensorRT plugin) is
judged against. It depends on torch and the parameter record ``LayerRule``
(threshold, k, gamma, fixed_r: the C++ side's ``TokenDropParams`` with P beside it).

Differences from the official implementation (github ArmenJeddi/saint,
``ViT/saint/prune.py``), each chosen so the rule is deterministic and
portable while giving the same drops on real inputs:

* ``r`` is computed with integer arithmetic (``sum // B``) instead of a float
  mean truncated by ``int()``; equal for every batch size that float32 counts
  exactly (all practical ones).
* The per-sample order is a *stable* descending sort (ties: lower index
  first); upstream uses ``argsort`` whose tie order is unspecified.
* Zero metric vectors are normalised with a tiny epsilon instead of producing
  NaN.
* NaN (from a NaN metric): a NaN similarity is never an edge (``NaN >= tau`` is
  false) and is left out of the valid-edge mean; it does enter the plain row
  mean used when ``cnt == 0``, so such a row's score is NaN. NaN scores sort
  *first* in the descending order (above +inf, as ``torch.sort`` places them),
  NaN ties by lower index, so they are dropped first and ranks stay a
  permutation. The CUDA kernels (``saintTokenDropMath.cuh``) use the same order.
* Similarity math always runs in float32, whatever the input dtype.
* ``K`` and ``gamma`` are honoured (upstream accepts but hard-codes them),
  ``protected`` generalises the class/distillation flags to any number of
  leading tokens (register tokens), and ``fixed_r`` gives a fixed schedule.
* ``kept_index`` is returned so callers can track which input tokens survive.
* :func:`saint_drop_per_sample` (not upstream) is the batch-invariant mode: every
  sample votes its own r, as if it ran alone, and the batch is padded to its
  longest sample; a key-padding mask travels with the tokens.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from .schedule import LayerRule

EPS = 1e-12


PAD_INDEX = -1  # kept_index of a padding slot (per-sample mode)


class DropResult(NamedTuple):
    tokens: torch.Tensor  # [B, N - r, C]
    kept_index: torch.Tensor  # [B, N - r] int64
    r: int


def normalize(metric: torch.Tensor) -> torch.Tensor:
    """L2-normalise the last dim in float32: ``m / max(||m||, EPS)``. [B, N, D] -> [B, N, D]"""
    m = metric.float()
    norm = torch.sqrt((m * m).sum(dim=-1, keepdim=True))
    return m / torch.clamp(norm, min=EPS)


def similarity(metric: torch.Tensor, protected: int) -> torch.Tensor:
    """Bipartite cosine similarity of the unprotected tokens.

    metric [B, N, D] -> S [B, Na, Nb], a = even positions after ``protected``,
    b = odd positions.
    """
    m = normalize(metric[:, protected:])
    a, b = m[:, 0::2], m[:, 1::2]
    return a @ b.transpose(-1, -2)


def row_counts(scores: torch.Tensor, threshold: float) -> torch.Tensor:
    """cnt [B, Na] int64: how many b-tokens each a-token is at least ``threshold`` similar to."""
    return (scores >= threshold).sum(dim=-1)


def vote_r(cnt: torch.Tensor, k: int, fixed_r: int = -1) -> int:
    """Number of a-tokens to drop for the whole batch.

    Vote (``fixed_r < 0``): ``floor(sum_b #{rows with cnt >= k} / B)``, integer
    arithmetic. Fixed: ``min(fixed_r, Na)``. Always clamped to ``[0, Na]``.
    """
    batch, na = cnt.shape
    if fixed_r >= 0:
        r = fixed_r
    else:
        r = int((cnt >= k).sum().item()) // max(batch, 1)
    return max(0, min(r, na))


def row_scores(scores: torch.Tensor, cnt: torch.Tensor, threshold: float, gamma: float) -> torch.Tensor:
    """score [B, Na] float32: ``cnt * exp(gamma * (mean valid S - threshold))`` where
    ``cnt > 0``, else the plain mean of the row."""
    valid = scores >= threshold
    cntf = cnt.float()
    valid_sum = torch.where(valid, scores, torch.zeros_like(scores)).sum(dim=-1)  # NaN * 0 would leak NaN
    valid_mean = valid_sum / torch.clamp(cntf, min=1.0)
    candidate = cntf * torch.exp(gamma * (valid_mean - threshold))
    alternative = scores.sum(dim=-1) / scores.shape[-1]
    return torch.where(cnt > 0, candidate, alternative)


def kept_positions(order: torch.Tensor, r: int, n: int, protected: int) -> torch.Tensor:
    """kept_index [B, N - r]: [protected..., kept a-side in score order, all b-side in order]."""
    batch = order.shape[0]
    dev = order.device
    head = torch.arange(protected, device=dev).expand(batch, protected)
    a_kept = protected + 2 * order[:, r:]
    nb = (n - protected) // 2
    b_all = (protected + 1 + 2 * torch.arange(nb, device=dev)).expand(batch, nb)
    return torch.cat([head, a_kept, b_all], dim=1)


def saint_drop(tokens: torch.Tensor, metric: torch.Tensor, rule: LayerRule = LayerRule(), protected: int = 1) -> DropResult:
    """Apply SAINT's drop step.

    Args:
        tokens: [B, N, C] hidden states after the attention residual, any float dtype.
        metric: [B, N, D] the block's attention keys averaged over heads.
        rule: the layer's parameters: ``threshold`` (tau, similarity at or above which an (a, b)
            edge counts), ``k`` (an a-row votes for dropping when it has at least K edges),
            ``gamma`` (sharpness of the score's exponential), ``fixed_r`` (-1 = vote; >= 0 = drop
            exactly ``min(fixed_r, Na)``).
        protected: P leading tokens never dropped (class, distillation, registers).

    Returns:
        DropResult(tokens [B, N - r, C] in the input dtype, kept_index [B, N - r]
        int64 positions in the input, r). ``r == 0`` returns ``tokens`` unchanged
        with ``kept_index = arange(N)``.
    """
    if tokens.dim() != 3 or metric.dim() != 3:
        raise ValueError(f"tokens and metric must be [B, N, C] and [B, N, D]; got {tuple(tokens.shape)} and {tuple(metric.shape)}")
    if tokens.shape[:2] != metric.shape[:2]:
        raise ValueError(f"tokens {tuple(tokens.shape)} and metric {tuple(metric.shape)} disagree on [B, N]")
    batch, n, _ = tokens.shape
    identity = DropResult(tokens, torch.arange(n, device=tokens.device).expand(batch, n).clone(), 0)
    if n - protected < 2:
        return identity
    scores = similarity(metric, protected)
    cnt = row_counts(scores, rule.threshold)
    r = vote_r(cnt, rule.k, rule.fixed_r)
    if r == 0:
        return identity
    score = row_scores(scores, cnt, rule.threshold, rule.gamma)
    order = torch.sort(score, dim=-1, descending=True, stable=True).indices
    kept = kept_positions(order, r, n, protected)
    out = tokens.gather(1, kept.unsqueeze(-1).expand(-1, -1, tokens.shape[-1]))
    return DropResult(out, kept, r)


class MaskedDropResult(NamedTuple):
    tokens: torch.Tensor  # [B, M, C], padding slots are zero
    kept_index: torch.Tensor  # [B, M] int64, PAD_INDEX in padding slots
    mask: torch.Tensor  # [B, M] bool, True = a real token; each row is a prefix of Trues


def saint_drop_per_sample(tokens: torch.Tensor, metric: torch.Tensor, mask: torch.Tensor | None = None,
                          rule: LayerRule = LayerRule(), protected: int = 1) -> MaskedDropResult:
    """SAINT's drop step with a per-sample vote (batch-invariant mode).

    Sample b holds ``n_b = mask[b].sum()`` real tokens, a prefix of its row (the
    layout this function produces). Its tokens and kept_index are exactly those
    of ``saint_drop`` on ``tokens[b:b+1, :n_b]`` alone, so the vote ``r_b`` is
    that sample's own row count (``min(fixed_r, Na_b)`` when fixed). The rows
    are padded to M = max_b (n_b - r_b) with zero tokens, ``PAD_INDEX`` and
    ``mask`` False.

    Args:
        tokens: [B, N, C]; metric: [B, N, D]; mask: [B, N] bool or None (all real).
        Other arguments as :func:`saint_drop`.
    """
    batch, n, channels = tokens.shape
    if mask is None:
        mask = torch.ones(batch, n, dtype=torch.bool, device=tokens.device)
    if mask.shape != (batch, n):
        raise ValueError(f"mask must be [B, N] = {[batch, n]}; got {list(mask.shape)}")
    lengths = mask.sum(dim=1).tolist()
    if any(not bool(mask[b, :length].all()) for b, length in enumerate(lengths)):
        raise ValueError("mask rows must be a prefix of True values (real tokens first, then padding)")
    runs = [saint_drop(tokens[b:b + 1, :length], metric[b:b + 1, :length], rule, protected)
            for b, length in enumerate(lengths)]
    m = max((run.kept_index.shape[1] for run in runs), default=0)
    out = tokens.new_zeros(batch, m, channels)
    kept = torch.full((batch, m), PAD_INDEX, dtype=torch.int64, device=tokens.device)
    for b, run in enumerate(runs):
        out[b, :run.kept_index.shape[1]] = run.tokens[0]
        kept[b, :run.kept_index.shape[1]] = run.kept_index[0]
    return MaskedDropResult(out, kept, kept != PAD_INDEX)
