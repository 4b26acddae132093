"""Test-only transcription of the official SAINT VLM algorithms (github ArmenJeddi/saint, VLM/),
written from their description, batch 1, to check saint_export's implementations against."""

import torch
import torch.nn.functional as F


def iterative_drop_full_graph(x, keys, keep_num=64, r=16):
    """x [1, N, C], keys [1, N, D]: class token kept, patch tokens dropped in rounds (see the module doc)."""
    cls_token = x[:, :1, :]
    tokens = x[:, 1:, :][0]
    keys = keys[:, 1:, :][0]
    norm_keys = F.normalize(keys, p=2, dim=-1)
    sim = norm_keys @ norm_keys.transpose(0, 1)
    cand_idx = torch.arange(tokens.shape[0], device=x.device)
    while cand_idx.shape[0] > (keep_num - 1):
        n = cand_idx.shape[0]
        scores = sim[cand_idx][:, cand_idx].sum(dim=-1)
        r = min(n - (keep_num - 1), n // r)
        drop = scores.argsort(descending=True)[:r]
        mask = torch.ones(n, dtype=torch.bool, device=x.device)
        mask[drop] = False
        cand_idx = cand_idx[mask]
    return torch.cat([cls_token, tokens[cand_idx, :].unsqueeze(0)], dim=1)
