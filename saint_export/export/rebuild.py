"""Rebuild the PyTorch model an ONNX file was exported from, from its metadata."""

from __future__ import annotations

import json
import re
from pathlib import Path

from ..config import config_from_mapping
from ..errors import InputError
from ..models import BuiltModel, build_model
from ..registry import resolve
from .pipeline import metadata_of, schedule_from_metadata


def built_from_onnx(path: Path, model: str | None = None, checkpoint: str | None = None,
                    weights: str | None = None) -> BuiltModel:
    """Same alias, weights (seeded random, hub or checkpoint) and exact per-layer schedule."""
    meta = metadata_of(Path(path))
    if model:
        cfg = resolve(model)
    elif "config" in meta:
        cfg = config_from_mapping(json.loads(meta["config"]), f"{path} metadata")
    else:
        raise InputError(f"{path} has no saint-export metadata; pass --model to say what it was exported from")
    source = meta.get("weights", "random(seed=0)")
    seed_match = re.fullmatch(r"random\(seed=(\d+)\)", source)
    if checkpoint is None and weights is None:
        if seed_match:
            weights = "random"
        elif source == "pretrained":
            weights = "pretrained"
        elif Path(source).is_file():
            checkpoint = source
        else:
            raise InputError(f"{path} was exported from checkpoint {source}, which is not here; pass --checkpoint")
    overrides = schedule_from_metadata(meta) if "schedule" in meta else {}
    return build_model(cfg, weights=weights or "random", checkpoint=checkpoint, overrides=overrides,
                       seed=int(seed_match.group(1)) if seed_match else 0)
