"""Tokens per block and analytic FLOPs of a patched ViT (timm or transformers)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..reference.patch import attention, blocks


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
def trace_tokens(module: torch.nn.Module, pixels: torch.Tensor) -> tuple[list[BlockTokens], torch.Tensor]:
    """Run ``module`` on ``pixels`` [B, 3, H, W]; return per-block token counts and the output."""
    seen: list[BlockTokens] = []
    hooks = []
    for i, block in enumerate(blocks(module)):
        def hook(mod, args, out, i=i):
            out = out[0] if isinstance(out, tuple) else out
            seen.append(BlockTokens(i, int(args[0].shape[1]), int(out.shape[1]), getattr(mod, "_saint_rule", None) is not None))
        hooks.append(block.register_forward_hook(hook))
    try:
        out = module(pixels)
    finally:
        for h in hooks:
            h.remove()
    return seen, out


def _linear_flops(modules, n: int) -> int:
    return sum(2 * n * m.in_features * m.out_features for m in modules if isinstance(m, torch.nn.Linear))


def _head_dim(attn: torch.nn.Module, width: int) -> int:
    for name in ("head_dim", "attention_head_size"):
        if isinstance(getattr(attn, name, None), int):
            return getattr(attn, name)
    heads = getattr(attn, "num_heads", None) or getattr(attn, "num_attention_heads", None)
    return width // int(heads)


def vit_flops(module: torch.nn.Module, traced: list[BlockTokens]) -> int:
    """FLOPs (2 x MACs) for one image at the given per-block token counts: patch embedding, every
    Linear of attention on the tokens it sees and of the MLP on the tokens left after the drop,
    QK^T and AV, SAINT's similarity, and the layers after the encoder on one token."""
    layers = blocks(module)
    in_layers = {id(m) for layer in layers for m in layer.modules()}
    conv = next(m for m in module.modules() if isinstance(m, torch.nn.Conv2d))
    patches = traced[0].tokens_in - int(getattr(module, "_saint_protected", 0))
    total = 2 * patches * conv.in_channels * conv.kernel_size[0] * conv.kernel_size[1] * conv.out_channels // conv.groups
    for bt in traced:
        layer, n = layers[bt.block], bt.tokens_in
        attn = attention(layer)
        attn_linears = [m for m in attn.modules() if isinstance(m, torch.nn.Linear)]
        width = getattr(attn, "attn_dim", None) or attn_linears[0].out_features
        total += _linear_flops(attn_linears, n) + 2 * 2 * n * n * width  # projections, QK^T and AV
        if bt.prunes:
            free = n - int(getattr(layer, "_saint_protected", getattr(module, "_saint_protected", 0)))
            total += 2 * ((free + 1) // 2) * (free // 2) * _head_dim(attn, width)  # SAINT's similarity
        in_attn = {id(m) for m in attn.modules()}
        total += _linear_flops([m for m in layer.modules() if id(m) not in in_attn], bt.tokens_out)
    total += _linear_flops([m for m in module.modules() if id(m) not in in_layers], 1)
    return total


def dense_tokens(module: torch.nn.Module, n_tokens: int) -> list[BlockTokens]:
    return [BlockTokens(i, n_tokens, n_tokens, False) for i in range(len(blocks(module)))]
