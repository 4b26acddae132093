"""Batch invariance: a sample's output run in a batch against the same sample run alone.

Schedules with a per-sample vote (or fixed counts) promise that a request's answer does not
depend on its batch mates; ``validate`` proves it on every backend it runs.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

TOLERANCE = 1e-5  # fp32: max |batch - alone| <= TOLERANCE * max(1, max |output|)
FP16_INVARIANCE = 1e-2  # fp16 models: rounding differs with the batch's padded length


def batch_vs_alone(run: Callable[[np.ndarray], np.ndarray], pixels: np.ndarray, batched: np.ndarray | None = None) -> float:
    """max |run(pixels)[i] - run(pixels[i:i+1])| over the batch, relative to max(1, max |output|).

    ``batched`` is ``run(pixels)`` when the caller already has it. pixels [B, 3, H, W]."""
    batched = run(pixels) if batched is None else batched
    alone = np.concatenate([run(pixels[i:i + 1]) for i in range(pixels.shape[0])])
    return float(np.abs(batched - alone).max() / max(1.0, float(np.abs(batched).max())))
