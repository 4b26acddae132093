"""Patches that make host-library models run SAINT. One module per host library."""

from .timm import apply_patch as timm
from .timm import remove_patch, is_patched, set_pruning, pruning, protected_tokens

__all__ = ["timm", "remove_patch", "is_patched", "set_pruning", "pruning", "protected_tokens"]
