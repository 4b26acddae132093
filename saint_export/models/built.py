"""``BuiltModel``: a patched PyTorch model with the config, schedule and weights it was built from."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..reference import patch
from ..reference.schedule import Schedule
from .config import ModelConfig


@dataclass
class BuiltModel:
    config: ModelConfig
    module: torch.nn.Module  # patched, eval mode
    schedule: Schedule
    protected: int
    weights: str  # "random(seed=0)", "pretrained", or the checkpoint path

    @property
    def depth(self) -> int:
        return len(patch.blocks(self.module))

    @property
    def classifier(self) -> bool:
        """True when the output is class logits; False for backbones (``num_classes=0``: embeddings)."""
        if self.config.is_hf:  # a TensorOutput around the transformers model
            return "ForImageClassification" in type(self.module.model).__name__
        return int(getattr(self.module, "num_classes", 0) or 0) > 0
