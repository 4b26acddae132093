#!/usr/bin/env python3
"""Time the SaintTokenDrop CUDA kernels against the same step done by PyTorch ops, on one GPU,
in one run, and against one ViT-H/14 block at the same batch. Prints ratios; writes JSON.

    python tools/bench_kernels.py [--out kernels_bench.json] [--iters 200]

Shapes: ViT-H/14 (B=64, N=257, C=1280, D=80) and ViT-B/16 (B=64, N=197, C=768, D=64), tau 0.75 on
clustered keys (real redundancy). Needs a CUDA GPU, cmake and nvcc (builds the harness if needed).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import torch


def cuda_time(fn, iters: int, warmup: int = 20) -> float:
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(iters):
        fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / iters * 1e3  # microseconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="kernels_bench.json")
    parser.add_argument("--iters", type=int, default=200)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("needs a CUDA GPU", file=sys.stderr)
        return 5
    sys.path[:0] = [str(Path(__file__).resolve().parent.parent), str(Path(__file__).resolve().parent.parent / "tests")]
    import timm.models.vision_transformer as vt

    from kernel_harness import KernelHarness, build_harness, find_harness
    from saint_export.reference.rule import saint_drop

    lib = find_harness() or build_harness(Path(tempfile.mkdtemp()), extra=("-DSAINT_BUILD_PLUGIN=OFF",))
    harness = KernelHarness(lib)
    rows = []
    for name, b, n, c, d, heads in (("vit_h14", 64, 257, 1280, 80, 16), ("vit_b16", 64, 197, 768, 64, 12)):
        g = torch.Generator(device="cuda").manual_seed(0)
        centres = torch.randn(16, d, device="cuda", generator=g)
        metric = centres[torch.randint(0, 16, (b, n), device="cuda", generator=g)] + 0.15 * torch.randn(b, n, d, device="cuda", generator=g)
        for dtype in (torch.float32, torch.float16, torch.bfloat16):
            tokens = torch.randn(b, n, c, device="cuda", dtype=dtype)
            m = metric.to(dtype)
            ours = cuda_time(lambda: harness.token_drop(tokens, m), args.iters)
            torch_ops = cuda_time(lambda: saint_drop(tokens, m), args.iters)
            block = vt.Block(c, heads).cuda().to(dtype).eval()
            with torch.no_grad():
                block_us = cuda_time(lambda: block(tokens), max(20, args.iters // 10))
            rows.append({"model": name, "dtype": str(dtype).split(".")[-1], "B": b, "N": n, "C": c, "D": d,
                         "kernel_us": ours, "torch_ops_us": torch_ops, "speedup_vs_torch": torch_ops / ours,
                         "block_us": block_us, "kernel_share_of_block": ours / block_us})
            r = rows[-1]
            print(f"{name} {r['dtype']:>8}: kernels {ours:8.1f} us, PyTorch ops {torch_ops:8.1f} us "
                  f"(x{r['speedup_vs_torch']:.1f}), one block {block_us:8.1f} us -> {100 * r['kernel_share_of_block']:.2f}% of a block")
    report = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__, "rows": rows}
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"device: {report['device']}; report: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
