#!/usr/bin/env python3
"""Mutation check of the CPU kernel tests: plant known bugs in a copy of saintTokenDropKernels.cu,
build each copy for the CPU (plugins/cuda_cpu), run a small grid against saint_drop and expect a failure.

    PYTHONPATH=. python tools/mutate_kernels.py [--only NAME ...] [--build-dir DIR]

The unmutated kernels must pass first. Exit status 1 when a mutant survives (the grid did not notice
the bug) or the baseline fails. Each run is a subprocess: a mutant may abort, crash or hang.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # kernel_harness: test scaffolding
KERNELS = ROOT / "plugins" / "saint_token_drop" / "saintTokenDropKernels.cu"

# name -> (text in the kernels, its buggy replacement, builds to try): tools/kernel_mutants.yaml
MUTANTS = {m["name"]: (m["original"], m["mutant"], tuple(m["builds"]))
           for m in yaml.safe_load((Path(__file__).with_name("kernel_mutants.yaml")).read_text())}

# (N, B, D, P, C, dtype, thread-order seed): two tiles of b-rows, D below a warp, 16-byte and short rows
GRID_CASES = [
    (101, 2, 64, 1, 48, "float32", 0),
    (101, 2, 1, 0, 48, "float32", 0),
    (197, 2, 80, 5, 5, "float32", 7),
    (75, 3, 256, 1, 8, "float16", 3),
]

RUN_GRID = """
import sys, os, torch
from saint_export import LayerRule, saint_drop
from kernel_harness import KernelHarness
h = KernelHarness(sys.argv[1])
for n, b, d, p, c, dtype, seed in CASES:
    os.environ["CUDA_CPU_SEED"] = str(seed)
    g = torch.Generator().manual_seed(n + b + d)
    dt = getattr(torch, dtype)
    metric = (torch.randn(8, d, generator=g)[torch.randint(0, 8, (b, n), generator=g)]
              + 0.15 * torch.randn(b, n, d, generator=g)).to(dt)
    tokens = torch.randn(b, n, c, generator=g).to(dt)
    ref = saint_drop(tokens, metric, LayerRule(), p)
    out, kept, m = h.token_drop(tokens, metric, LayerRule(), p)
    case = (n, b, d, p, c, dtype, seed)
    if m != n - ref.r:
        sys.exit(f"{case}: M {m} vs reference {n - ref.r}")
    if not torch.equal(kept, ref.kept_index):
        sys.exit(f"{case}: kept_index differs")
    if not torch.equal(out, ref.tokens):
        sys.exit(f"{case}: tokens differ")
print("grid passed")
"""


def preload_for_sanitizer() -> str:
    cxx = shutil.which("g++") or shutil.which("c++") or "g++"
    libs = [subprocess.run([cxx, f"-print-file-name={n}"], capture_output=True, text=True).stdout.strip()
            for n in ("libasan.so", "libstdc++.so.6")]
    return " ".join(lib for lib in libs if os.path.isabs(lib))


def run_grid(lib: Path, sanitize: bool, timeout: float) -> tuple[bool, str]:
    """(passed, what happened) for the grid on ``lib`` in a fresh process."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "tests")]))
    if sanitize:
        env.update(LD_PRELOAD=preload_for_sanitizer(), ASAN_OPTIONS="detect_leaks=0",
                   UBSAN_OPTIONS="halt_on_error=1")
    code = f"CASES = {GRID_CASES!r}\n{RUN_GRID}"
    try:
        res = subprocess.run([sys.executable, "-c", code, str(lib)], capture_output=True, text=True, env=env,
                             timeout=timeout)
    except subprocess.TimeoutExpired:
        return False, f"timed out after {timeout:.0f} s"
    if res.returncode == 0:
        return True, "grid passed"
    lines = [ln for ln in (res.stderr + res.stdout).splitlines() if ln.strip()]
    hint = next((ln for ln in lines if "ERROR: AddressSanitizer" in ln or "runtime error" in ln or "cuda_cpu:" in ln),
                lines[-1] if lines else f"exit status {res.returncode}")
    return False, hint.strip()[:300]


def build(build_dir: Path, cu: Path, sanitize: bool) -> Path:
    """Build ``cu`` in ``build_dir`` (reused across mutants); the rewritten source and the library are
    removed first, so a library left from the previous mutant can never be tested by mistake."""
    from kernel_harness import build_cpu_harness

    generated = build_dir / "cuda_cpu" / "saint_kernels_cpu" / f"{cu.name}.cpp"
    for stale in (generated, build_dir / "libsaint_kernels_cpu.so"):
        stale.unlink(missing_ok=True)
    lib = build_cpu_harness(build_dir, sanitize=sanitize, kernels_cu=cu)
    if not generated.is_file() or not lib.is_file():
        raise RuntimeError(f"the build in {build_dir} did not regenerate {generated.name} and the library")
    return lib


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="mutant names to run (default: all)")
    parser.add_argument("--build-dir", type=Path, help="reuse build directories here (default: a temporary one)")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per grid run")
    args = parser.parse_args(argv)
    names = args.only or list(MUTANTS)
    unknown = [n for n in names if n not in MUTANTS]
    if unknown:
        parser.error(f"unknown mutants {unknown}; known: {list(MUTANTS)}")
    source = KERNELS.read_text()
    work = args.build_dir or Path(tempfile.mkdtemp(prefix="saint_mutants_"))
    work.mkdir(parents=True, exist_ok=True)
    mutant_cu = work / "src" / KERNELS.name
    mutant_cu.parent.mkdir(exist_ok=True)

    def attempt(text: str, mode: str) -> tuple[bool, str, float]:
        start = time.time()
        mutant_cu.write_text(text)
        lib = build(work / mode, mutant_cu, sanitize=mode == "sanitize")
        passed, what = run_grid(lib, mode == "sanitize", args.timeout)
        return passed, what, time.time() - start

    modes_used = ["plain"] + (["sanitize"] if any("sanitize" in MUTANTS[n][2] for n in names) else [])
    if "sanitize" in modes_used and "libasan" not in preload_for_sanitizer():
        print("no libasan.so next to the C++ compiler: sanitizer runs skipped", flush=True)
        modes_used.remove("sanitize")
    for mode in modes_used:  # a mutant counts as caught only where the unmutated kernels pass
        passed, what, secs = attempt(source, mode)
        print(f"{'baseline':<36} {mode:<9} {'passes' if passed else 'FAILS'} ({secs:.0f} s): {what}", flush=True)
        if not passed:
            return 1
    survivors = []
    for name in names:
        original, buggy, modes = MUTANTS[name]
        if source.count(original) != 1:
            print(f"{name:<36} the kernels no longer contain the text to mutate exactly once", flush=True)
            survivors.append(name)
            continue
        for mode in (m for m in modes if m in modes_used):
            passed, what, secs = attempt(source.replace(original, buggy), mode)
            verdict = "SURVIVED" if passed else "caught"
            print(f"{name:<36} {mode:<9} {verdict} ({secs:.0f} s): {what}", flush=True)
            if passed:
                survivors.append(f"{name} ({mode})")
    if survivors:
        print(f"{len(survivors)} mutant(s) survived: {survivors}")
        return 1
    print("every mutant was caught")
    return 0


if __name__ == "__main__":
    sys.exit(main())
