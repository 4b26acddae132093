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


def saint_drop_llm(metric, sim_threshold=0.83, K=5, gamma=10.0):
    """The LLM-side rule, batch mean vote: metric [B, N, C] -> kept indices [B, N - r] (kept even-position
    tokens in descending score order, then every odd-position token)."""
    B, N, _ = metric.shape
    unit = metric / metric.norm(dim=-1, keepdim=True)
    sim = unit[:, 0::2] @ unit[:, 1::2].transpose(-1, -2)
    edges = sim >= sim_threshold
    count = edges.sum(dim=-1)
    r = int((count >= K).float().sum(dim=-1).mean().item())
    if r <= 0:
        return torch.arange(N).unsqueeze(0).expand(B, -1)
    mean_edge = (sim * edges).sum(dim=-1) / count.clamp(min=1)
    score = torch.where(count > 0, count * torch.exp(gamma * (mean_edge - sim_threshold)), sim.mean(dim=-1))
    order = torch.sort(score, dim=-1, descending=True, stable=True).indices
    odd = torch.arange(sim.shape[-1]).unsqueeze(0).expand(B, -1) * 2 + 1
    return torch.cat([order[:, r:] * 2, odd], dim=1)


def _causal(n):
    return torch.ones(n, n, dtype=torch.bool).tril()[None, None]


@torch.no_grad()
def llm_only_prefill_and_decode(lm, lm_head, embeds, sys_len, image_len, start, end, threshold, steps, position_step=1):
    """Batch 1, written from the description of the official Llama loop: the stock decoder layers run one
    by one; after layers start..end (prefill only) the image span [sys_len, sys_len + image_len) of that
    layer's cached keys (after RoPE) averaged over heads goes through ``saint_drop_llm``; system and
    text tokens stay, kept indices are sorted, hidden states and position ids gathered, the causal mask
    rebuilt; each layer's cache keeps its length. Greedy decoding then attends to every cached entry;
    the new token's position is layer 0's cache length + ``position_step`` - 1 (upstream: + 1, i.e.
    ``position_step=2`` reproduces its seq_length_with_past). Returns (the logits that chose each new
token [1, steps, V], the new ids [1, steps])."""
    from transformers import DynamicCache

    cache = DynamicCache(config=lm.config)
    h, n = embeds, embeds.shape[1]
    pos = torch.arange(n).unsqueeze(0)
    mask = _causal(n)
    for idx, layer in enumerate(lm.layers):
        h = layer(h, attention_mask=mask, position_ids=pos, cache=cache, use_cache=True,
                  position_embeddings=lm.rotary_emb(h, pos))
        if start <= idx <= end:
            keys = cache.layers[idx].keys.mean(dim=1)
            kept = saint_drop_llm(keys[:, sys_len:sys_len + image_len], threshold) + sys_len
            tail = torch.arange(sys_len + image_len, h.shape[1]).unsqueeze(0)
            keep = torch.sort(torch.cat([torch.arange(sys_len).unsqueeze(0), kept, tail], dim=1), dim=1).values
            h, pos = h[:, keep[0]], pos[:, keep[0]]
            mask, image_len = _causal(h.shape[1]), kept.shape[1]
    logits = lm_head(lm.norm(h))[:, -1]
    scores, new = [], []
    for _ in range(steps):
        token = logits.argmax(-1, keepdim=True)
        scores.append(logits)
        new.append(token)
        h = lm.embed_tokens(token)
        pos = torch.full((1, 1), cache.get_seq_length() + position_step - 1)
        for layer in lm.layers:
            h = layer(h, attention_mask=None, position_ids=pos, cache=cache, use_cache=True,
                      position_embeddings=lm.rotary_emb(h, pos))
        logits = lm_head(lm.norm(h))[:, -1]
    return torch.stack(scores, dim=1), torch.cat(new, dim=1)
