"""SAINT's iterative full-graph drop (the VLM tower mode), as one pure function over tensors.

Each round scores every remaining patch token by its row sum of cosine similarity to the others
(the full graph, self-similarity included, keys computed once), drops the ``r`` highest, and
keeps the rest in their original order, until ``keep`` tokens (the protected ones included) are
left. The count is known before the data is seen, so this traces to standard ops (TopK, Gather).

Differences from the official implementation (github ArmenJeddi/saint, ``VLM/saint/prune.py``
``iterative_drop_full_graph``):

* batched: every sample runs the same rounds (their sizes depend on N only); upstream runs on
  ``x[:, 1:][0]``, batch 1;
* ``quirk=True`` (default) reproduces upstream's per-round count, whose divisor is the previous
  round's count (``r = min(N - keep, N // r)``, starting from ``divisor``: 576 patches give 36,
  15, 35, ...); ``quirk=False`` divides by ``divisor`` every round;
* a round never drops fewer than one token (upstream would loop forever, then divide by zero,
  once ``N // r`` reaches 0);
* ties in the score order are broken by the lower index (stable sort); upstream's ``argsort`` leaves
  them unspecified;
* ``protected`` generalises the single class token.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from .rule import normalize


class IterativeResult(NamedTuple):
    tokens: torch.Tensor  # [B, keep, C]
    kept_index: torch.Tensor  # [B, keep] int64, ascending


def round_sizes(patches: int, keep_patches: int, divisor: int, quirk: bool = True) -> list[int]:
    """The count dropped in each round, from ``patches`` unprotected tokens down to ``keep_patches``."""
    sizes, n, previous = [], patches, divisor
    while n > keep_patches:
        r = max(1, min(n - keep_patches, n // (previous if quirk else divisor)))
        sizes.append(r)
        n, previous = n - r, r
    return sizes


def iterative_drop(tokens: torch.Tensor, metric: torch.Tensor, keep: int, divisor: int = 16, protected: int = 1,
                   quirk: bool = True) -> IterativeResult:
    """tokens [B, N, C], metric [B, N, D] -> ``keep`` tokens per sample: the ``protected`` leading ones,
    then the surviving patch tokens in their original order."""
    batch, n, channels = tokens.shape
    if not protected < keep <= n:
        raise ValueError(f"keep must be in ({protected}, {n}] (protected tokens included); got {keep}")
    m = normalize(metric[:, protected:])
    sim = m @ m.transpose(-1, -2)  # [B, P', P'], computed once
    cand = torch.arange(n - protected, device=tokens.device).expand(batch, -1)
    for r in round_sizes(n - protected, keep - protected, divisor, quirk):
        rows = sim.gather(1, cand.unsqueeze(-1).expand(-1, -1, sim.shape[-1]))
        scores = rows.gather(2, cand.unsqueeze(1).expand(-1, cand.shape[1], -1)).sum(-1)
        order = torch.sort(scores, dim=-1, descending=True, stable=True).indices
        survivors = torch.sort(order[:, r:], dim=-1).values  # original order
        cand = cand.gather(1, survivors)
    head = torch.arange(protected, device=tokens.device).expand(batch, -1)
    kept = torch.cat([head, cand + protected], dim=1)
    return IterativeResult(tokens.gather(1, kept.unsqueeze(-1).expand(-1, -1, channels)), kept)
