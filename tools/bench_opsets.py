"""Which default-domain opset makes the portable model fastest in onnxruntime?

Exports MODEL dense and with SAINT at each opset, then times all of them round-robin in one run
(saint_export.bench.interleaved) on the same images, and prints images/s and each opset's
speedup over the first one, paired per round (median and interquartile range).

    python tools/bench_opsets.py vit_s16 --opsets 18,23 --batch 8 --rounds 20
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model")
    parser.add_argument("--opsets", default="18,23")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--threshold", type=float, default=None)
    parser.add_argument("--checkpoint", default=None)
    args = parser.parse_args()

    from saint_export.bench import interleaved, machine, paired_ratio
    from saint_export.export.pipeline import onnx_models_from_torch
    from saint_export.inputs import gather_inputs
    from saint_export.models.build import build_named
    from saint_export.runtimes.onnxruntime import ort_session

    built = build_named(args.model, checkpoint=args.checkpoint, overrides={"threshold": args.threshold})
    opsets = [int(v) for v in args.opsets.split(",")]
    pixels, _ = gather_inputs(built.config, batch=args.batch)
    feed = {"pixels": pixels.numpy()}
    fns = {}
    with tempfile.TemporaryDirectory() as tmp:
        for opset in opsets:
            for variant, pruned in (("dense", False), ("saint", True)):
                path = Path(tmp) / f"{variant}{opset}.onnx"
                onnx_models_from_torch(built, path, None, opset=opset, pruned=pruned)
                session = ort_session(path)
                fns[f"{variant} opset {opset}"] = lambda s=session: s.run(["logits"], feed)
        times = interleaved(fns, warmup=2, iters=args.rounds, min_seconds=0)
    info = machine()
    print(f"{built.config.alias}, batch {args.batch}, {args.rounds} rounds; {info.get('cpu')} x{info['cpu_count']}, "
          f"onnxruntime {info.get('onnxruntime')}")
    for variant in ("dense", "saint"):
        base = times[f"{variant} opset {opsets[0]}"]
        for opset in opsets:
            t = times[f"{variant} opset {opset}"]
            ratio, lo, hi = paired_ratio(base, t)
            print(f"{variant:<6} opset {opset}: {args.batch / (sorted(t)[len(t) // 2] / 1e3):7.1f} img/s, "
                  f"{ratio:.3f}x vs opset {opsets[0]} (IQR {lo:.3f}-{hi:.3f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
