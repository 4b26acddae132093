#!/usr/bin/env python3
"""saint-export's SAINT ONNX in onnxruntime against the official SAINT code in PyTorch eager.

Same timm model, same weights, same schedule, same batch of photos + generated images; the
official patch (``--saint-repo``: the ViT folder of your checkout of github ArmenJeddi/saint),
our patched model in PyTorch eager and our portable ONNX in onnxruntime run round-robin in one
process (saint_export.bench.interleaved). Prints images/s and paired speedups (median, IQR), after
checking that all three keep the same number of tokens.

    python tools/bench_vs_official.py --saint-repo ~/src/saint/ViT vit_s16 --threshold 0.9 --batch 8
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare_official import official_copy, run_blocks  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--saint-repo", required=True)
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--threshold", type=float, default=None)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--opset", type=int, default=18)
    args = parser.parse_args()

    from saint_export.bench import interleaved, machine, paired_ratio
    from saint_export.export.pipeline import onnx_models_from_torch
    from saint_export.inputs import gather_inputs
    from saint_export.models.build import build_named
    from saint_export.runtimes.onnxruntime import ort_session

    built = build_named(args.model, checkpoint=args.checkpoint, overrides={"threshold": args.threshold})
    theirs = official_copy(built, args.saint_repo)
    pixels, _ = gather_inputs(built.config, batch=args.batch)
    theirs_blocks, _ = run_blocks(theirs, pixels)
    ours_blocks, _ = run_blocks(built.module, pixels)
    tokens = [b.shape[1] for b in ours_blocks]
    if [b.shape[1] for b in theirs_blocks] != tokens:
        print("token counts differ between the official code and ours: not comparable", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        onnx_models_from_torch(built, Path(tmp) / "m.onnx", None, opset=args.opset)
        session = ort_session(Path(tmp) / "m.onnx")
        feed = {"pixels": pixels.numpy()}
        with torch.no_grad():
            times = interleaved({"official (torch eager)": lambda: theirs(pixels),
                                 "ours (torch eager)": lambda: built.module(pixels),
                                 "ours (onnxruntime)": lambda: session.run(["logits"], feed)},
                                warmup=2, iters=args.rounds, min_seconds=0)
    info = machine()
    print(f"{built.config.alias} {built.weights}, batch {args.batch}, tokens after each block {tokens}, {args.rounds} rounds; "
          f"{info.get('cpu')} x{info['cpu_count']}, torch {info['torch']}, onnxruntime {info.get('onnxruntime')}")
    base = times["official (torch eager)"]
    for name, t in times.items():
        ratio, lo, hi = paired_ratio(base, t)
        print(f"{name:<24} {args.batch / (sorted(t)[len(t) // 2] / 1e3):7.1f} img/s  {ratio:.2f}x vs official (IQR {lo:.2f}-{hi:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
