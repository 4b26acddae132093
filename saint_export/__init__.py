"""saint-export: deploy SAINT-pruned Vision Transformers (ONNX, TensorRT, Triton, C++).

One-call API::

    import timm, saint_export
    model = timm.create_model("vit_base_patch16_224")
    saint_export.patch.timm(model)          # published schedule: first half, tau 0.75, K 5, gamma 10
"""

from .reference import ops, patch  # noqa: F401  (ops registers saint::token_drop)
from .reference.rule import saint_drop
from .reference.schedule import LayerRule, Schedule, build_schedule
from .version import __version__

__all__ = ["patch", "ops", "saint_drop", "LayerRule", "Schedule", "build_schedule", "__version__"]
