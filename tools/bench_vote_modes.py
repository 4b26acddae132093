"""What does the batch-invariant mode (vote: sample) cost against SAINT's batch-mean vote?

Exports MODEL dense, with the batch-mean vote and with the per-sample vote (same schedule
otherwise), then reports for one batch of photos and generated images: tokens per pruning block
(per sample: the padded count M, and the mean of the samples' real counts), FLOP ratios at those
counts, cosine to dense, how far each sample's output moves when run alone instead of in the
batch, and onnxruntime latencies timed round-robin in one run (paired ratios, median and IQR).

    python tools/bench_vote_modes.py dinov2_s14 --batch 8 --rounds 15
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path


def tokens_and_flops(built, pixels):
    """(padded tokens after each pruning block, mean real tokens per block, dense / SAINT FLOPs)."""
    from saint_export.reference.ops import recording
    from saint_export.verify.analysis import dense_tokens, trace_tokens, vit_flops

    with recording() as drops:
        traced, _ = trace_tokens(built.module, pixels)
    padded = [int(kept.shape[1]) for _, kept in drops]
    real = [round(float((kept >= 0).sum(1).float().mean()), 1) for _, kept in drops]
    ratio = vit_flops(built.module, dense_tokens(built.module, traced[0].tokens_in)) / vit_flops(built.module, traced)
    return padded, real, ratio


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", nargs="?", default="dinov2_s14")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--threshold", type=float, default=None)
    args = parser.parse_args()

    import numpy as np
    import torch

    from saint_export.bench import interleaved, machine, paired_ratio
    from saint_export.export.pipeline import onnx_models_from_torch
    from saint_export.inputs import gather_inputs
    from saint_export.models.build import build_named
    from saint_export.reference.patch import pruning
    from saint_export.runtimes.onnxruntime import ort_session
    from saint_export.verify.compare import agreement, describe_agreement
    from saint_export.verify.invariance import batch_vs_alone

    models = {vote: build_named(args.model, overrides={"threshold": args.threshold, "vote": vote}) for vote in ("batch", "sample")}
    pixels, _ = gather_inputs(models["batch"].config, batch=args.batch)
    feed = pixels.numpy()
    with torch.no_grad(), pruning(models["batch"].module, False):
        dense_out = models["batch"].module(pixels).numpy()
    fns, rows = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "dense.onnx"
        onnx_models_from_torch(models["batch"], path, None, pruned=False)
        dense = ort_session(path)
        fns["dense"] = lambda: dense.run(["logits"], {"pixels": feed})
        for vote, built in models.items():
            path = Path(tmp) / f"{vote}.onnx"
            onnx_models_from_torch(built, path, None)
            session = ort_session(path)
            run = lambda x, s=session: s.run(["logits"], {"pixels": x})[0]  # noqa: E731
            fns[vote] = lambda r=run: r(feed)
            out = run(feed)
            rows[vote] = (*tokens_and_flops(built, pixels), describe_agreement(agreement(out, dense_out, built.classifier)),
                          batch_vs_alone(run, feed, out))
        times = interleaved(fns, warmup=2, iters=args.rounds, min_seconds=0)
    info = machine()
    print(f"{args.model} ({models['batch'].weights}), {models['batch'].schedule.describe()}; batch {args.batch}, "
          f"{args.rounds} rounds; {info.get('cpu')} x{info['cpu_count']}, onnxruntime {info.get('onnxruntime')}")
    for vote, (padded, real, flops, fidelity, moved) in rows.items():
        speed, lo, hi = paired_ratio(times["dense"], times[vote])
        print(f"vote {vote:<6}: tokens {padded} (real per sample, mean {real}); FLOPs x{flops:.2f} fewer; "
              f"onnxruntime {speed:.2f}x dense (IQR {lo:.2f}-{hi:.2f}), {np.median(times[vote]):.0f} ms; "
              f"vs dense {fidelity}; batch vs alone {moved:.2g}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
