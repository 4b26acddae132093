#!/usr/bin/env python3
"""Layer-by-layer comparison of saint-export's reference with the official SAINT code.

The official implementation (github ArmenJeddi/saint) is not vendored: point
``--saint-repo`` at the ``ViT`` folder of your own checkout. Both patches run on copies
of the same timm model with the same weights, on the same batch; for each block the
tool prints the token count of both and the max abs difference of the hidden states,
then the logits' difference and top-1 agreement. Exit code 0 when every token count
matches, 1 otherwise.

    python tools/compare_official.py --saint-repo ~/src/saint/ViT vit_b16 --weights pretrained --photos
    python tools/compare_official.py --saint-repo ~/src/saint/ViT vit_b16 --synthetic --per-image

Upstream computes attention with an explicit softmax and ignores K/gamma arguments
(it always uses K = 5, gamma = 10), so use those defaults; our copy is switched to the
same non-fused attention so the two see the same arithmetic as far as possible.
"""

from __future__ import annotations

import argparse
import copy
import sys

import torch


def run_blocks(model, pixels):
    outs = []
    hooks = [b.register_forward_hook(lambda m, a, o: outs.append(o.detach().clone())) for b in model.blocks]
    try:
        with torch.no_grad():
            logits = model(pixels)
    finally:
        for h in hooks:
            h.remove()
    return outs, logits


def compare(official_model, ours, pixels, label):
    theirs_out, theirs_logits = run_blocks(official_model, pixels)
    ours_out, ours_logits = run_blocks(ours, pixels)
    ok = True
    print(f"== {label}: batch {pixels.shape[0]}")
    print(f"{'block':>5} {'official N':>10} {'ours N':>7} {'max |diff|':>11}")
    for i, (a, b) in enumerate(zip(theirs_out, ours_out)):
        same = a.shape == b.shape
        ok &= same
        diff = (a - b).abs().max().item() if same else float("nan")
        print(f"{i:>5} {a.shape[1]:>10} {b.shape[1]:>7} {diff:>11.3g}{'' if same else '  TOKEN COUNT DIFFERS'}")
    top1 = (theirs_logits.argmax(-1) == ours_logits.argmax(-1)).float().mean().item()
    print(f"logits max |diff| {(theirs_logits - ours_logits).abs().max().item():.3g}, top-1 agreement {top1:.0%}")
    return ok


def official_copy(built, saint_repo: str):
    """A copy of ``built``'s timm model with the official SAINT patch (same weights, same schedule).
    Raises ValueError when the schedule is one the official code cannot express."""
    sys.path.insert(0, saint_repo)
    import saint as official  # noqa: E402  (the user's checkout)

    from saint_export.reference.patch import remove_patch

    rules = built.schedule.as_dict()
    layers = built.schedule.layers
    if layers != list(range(len(layers))) or any(r.k != 5 or r.gamma != 10.0 or r.fixed_r >= 0 for r in rules.values()):
        raise ValueError("the official code supports a contiguous prefix of blocks with K=5, gamma=10 and no fixed_r")
    theirs = copy.deepcopy(built.module)
    remove_patch(theirs)
    official.patch.timm(theirs, rules[0].threshold, 5, 10.0)
    theirs.prune_mode = ["drop"] * len(layers)
    theirs.sim_threshold = [rules[i].threshold for i in layers]
    if built.protected != int(theirs.cls_token is not None) + int(getattr(theirs, "dist_token", None) is not None):
        raise ValueError("the official code protects only class/distillation tokens; this model has others")
    return theirs.eval()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--saint-repo", required=True, help="the ViT folder of a checkout of the official SAINT code")
    parser.add_argument("--weights", default="random", choices=["random", "pretrained"])
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--threshold", type=float, default=None)
    parser.add_argument("--synthetic", type=int, default=0, help="number of generated images")
    parser.add_argument("--photos", action="store_true", help="the photos scikit-image ships")
    parser.add_argument("--images", default=None, help="a folder of your images")
    parser.add_argument("--per-image", action="store_true", help="also compare each image alone (B = 1)")
    args = parser.parse_args()

    from saint_export.inputs import gather_inputs
    from saint_export.models.build import build_model
    from saint_export.models.registry import resolve

    cfg = resolve(args.model)
    built = build_model(cfg, args.weights, args.checkpoint, {"threshold": args.threshold})
    ours = built.module
    for block in ours.blocks:
        block.attn.fused_attn = False
    try:
        theirs = official_copy(built, args.saint_repo)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2

    pixels, names = gather_inputs(cfg, (), args.images, args.synthetic, args.photos)
    ok = compare(theirs, ours, pixels, "batch")
    if args.per_image:
        for i, name in enumerate(names):
            ok &= compare(theirs, ours, pixels[i:i + 1], name)
    print("PASS: token counts identical in every block" if ok else "FAIL: token counts differ")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
