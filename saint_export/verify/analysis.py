"""Tokens per block and analytic FLOPs of a (patched) timm ViT."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..reference.patch.timm import _SaintBlockMixin


@dataclass
class BlockTokens:
    block: int
    tokens_in: int  # attention runs on this many tokens
    tokens_out: int  # the MLP and later blocks see this many
    prunes: bool  # the block has a SAINT rule

    @property
    def r(self) -> int:
        return self.tokens_in - self.tokens_out


@torch.no_grad()
def trace_tokens(model: torch.nn.Module, pixels: torch.Tensor) -> tuple[list[BlockTokens], torch.Tensor]:
    """Run ``model`` on ``pixels`` [B, 3, H, W]; return per-block token counts and the logits."""
    seen: list[BlockTokens] = []
    hooks = []
    for i, block in enumerate(model.blocks):
        def hook(mod, args, out, i=i):
            prunes = isinstance(mod, _SaintBlockMixin) and mod._saint_rule is not None
            seen.append(BlockTokens(i, int(args[0].shape[1]), int(out.shape[1]), prunes))
        hooks.append(block.register_forward_hook(hook))
    try:
        logits = model(pixels)
    finally:
        for h in hooks:
            h.remove()
    return seen, logits


def _linear_flops(module: torch.nn.Module, n: int) -> int:
    return sum(2 * n * m.in_features * m.out_features for m in module.modules() if isinstance(m, torch.nn.Linear))


def vit_flops(model: torch.nn.Module, blocks: list[BlockTokens]) -> int:
    """FLOPs (2 x MACs) for one image at the given per-block token counts."""
    pe = model.patch_embed
    grid = pe.grid_size[0] * pe.grid_size[1]
    total = 2 * grid * pe.proj.in_channels * pe.proj.kernel_size[0] * pe.proj.kernel_size[1] * pe.proj.out_channels
    for bt in blocks:
        block = model.blocks[bt.block]
        attn = block.attn
        n = bt.tokens_in
        total += _linear_flops(attn, n)
        total += 2 * 2 * n * n * attn.attn_dim  # QK^T and AV
        if bt.prunes:
            na, nb = (n - block._saint_protected + 1) // 2, (n - block._saint_protected) // 2
            total += 2 * na * nb * attn.head_dim  # SAINT's similarity
        total += _linear_flops(block.mlp, bt.tokens_out)
    total += _linear_flops(model.head, 1) if isinstance(model.head, torch.nn.Module) else 0
    return total


def dense_tokens(model: torch.nn.Module, n_tokens: int) -> list[BlockTokens]:
    return [BlockTokens(i, n_tokens, n_tokens, False) for i in range(len(model.blocks))]
