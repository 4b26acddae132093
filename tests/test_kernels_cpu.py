"""saintTokenDropKernels.cu itself, compiled as host C++ against the CPU CUDA runtime (plugins/cuda_cpu)
and run on the CPU, against saint_drop: no GPU needed. Every CUDA thread is a fiber, barriers and warp
shuffles keep CUDA's semantics and fail loudly when misused, and half the cases schedule threads in a
seeded random order with warps drifting apart.

fp32: M identical; kept_index identical and tokens bit-equal wherever the decision is numerically
unambiguous: draws with a float64 similarity within 1e-5 of tau are redrawn, and samples whose two
different scores lie within 1e-6 (relative) are compared by M only (draws without any are preferred). fp16/bf16 follow tests/test_cuda_kernels.py: M equal, rows whose order
flips are reported, the others' tokens equal. The grid covers every N, B, D, P value of
test_cuda_kernels.py plus D = 1 and D = 256; SAINT_CPU_FULL_GRID=1 runs the full product instead
(about 7 minutes on 2 cores).
"""

import itertools
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from saint_export import saint_drop
from saint_export.reference.rule import saint_drop_per_sample
from saint_export.reference.schedule import LayerRule  # noqa: E402
from helpers import as_rule  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
TAU, K, GAMMA = 0.75, 5, 10.0


@pytest.fixture(scope="module")
def cpu_harness(tmp_path_factory):
    import kernel_harness as kernels

    try:
        return kernels.KernelHarness(kernels.build_cpu_harness(tmp_path_factory.mktemp("kernels_cpu")))
    except kernels.MissingDependencyError as exc:
        pytest.skip(f"cannot build the CPU kernels: {exc}")


@pytest.fixture
def seed(monkeypatch):
    """Set CUDA_CPU_SEED (0 = threads in order, warp by warp) for the calls of one test."""
    def use(value):
        monkeypatch.setenv("CUDA_CPU_SEED", str(value))
    return use


def clustered(b, n, d, seed, clusters=12, noise=0.15):
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(clusters, d, generator=g)
    return centres[torch.randint(0, clusters, (b, n), generator=g)] + noise * torch.randn(b, n, d, generator=g)


def near_ties(metric, p):
    """(a similarity within 1e-5 of tau anywhere, per sample: two different scores within 1e-6, relative).
    float32 summation order (kernel vs torch) could flip such decisions: the first changes votes and so r,
    the second the order of one sample."""
    m = metric[:, p:].double()
    m = m / m.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    s = m[:, 0::2] @ m[:, 1::2].transpose(-1, -2)
    valid = s >= TAU
    cnt = valid.sum(-1)
    mean_valid = (s * valid).sum(-1) / cnt.clamp_min(1)
    score = torch.where(cnt > 0, cnt * torch.exp(GAMMA * (mean_valid - TAU)), s.mean(-1)).sort(-1).values
    gap = (score[:, 1:] - score[:, :-1]) / score[:, 1:].abs().clamp_min(1e-3)
    return bool(((s - TAU).abs() < 1e-5).any()), ((gap > 0) & (gap < 1e-6)).any(-1)


def drawn_metric(b, n, d, p, seed):
    """A clustered metric without a similarity near tau (redrawn), and the mask of its samples without score
    near-ties, which must match the reference exactly. Draws with no near-tie at all are preferred; large
    batches (64 samples of 288 scores) rarely have one, so a few samples may be left out there."""
    best = None
    for attempt in range(30):
        metric = clustered(b, n, d, seed + 1000 * attempt)
        tau_tie, tied = near_ties(metric, p)
        if tau_tie:
            continue
        if not tied.any():
            return metric, ~tied
        if best is None or tied.sum() < best[1].sum():
            best = metric, tied
    if best is None or best[1].all():
        pytest.skip("every draw had a similarity within 1e-5 of tau or score near-ties in every sample")
    print(f"{int(best[1].sum())} of {b} samples have score near-ties and are compared by M only")
    return best[0], ~best[1]


def run(harness, tokens, metric, dtype, **kw):
    kw = dict(dict(threshold=TAU, k=K, gamma=GAMMA, protected=1, fixed_r=-1), **kw)
    ref = saint_drop(tokens.to(dtype), metric.to(dtype), *as_rule(**kw))
    out, kept, m = harness.token_drop(tokens.to(dtype), metric.to(dtype), *as_rule(**kw))
    return ref, out.clone(), kept.clone(), m


def grid():
    """(N, B, D, P, C, seed) cases: each N with every (D, P) of test_cuda_kernels.py and B cycling through
    1, 8, 64 (B = 64 not with N = 577, the slowest on a CPU), then D = 1 and D = 256 for each N. C cycles
    through row sizes with and without the 16-byte vector copy; odd cases use a random thread order."""
    if os.environ.get("SAINT_CPU_FULL_GRID") == "1":
        base = [(n, b, d, p) for n, b, d, p in itertools.product([197, 257, 577, 101], [1, 8, 64], [64, 80], [0, 1, 5])]
    else:
        base = []
        for n in [197, 257, 577, 101]:
            batches = itertools.cycle([1, 8] if n == 577 else [1, 8, 64])
            base += [(n, next(batches), d, p) for d, p in itertools.product([64, 80], [0, 1, 5])]
    base += [(n, 1 if n == 577 else 8, d, p) for n, (d, p) in zip([197, 257, 577, 101], [(1, 1), (256, 0), (1, 5), (256, 1)])]
    base += [(n, 1 if n == 577 else 8, d, p) for n, (d, p) in zip([197, 257, 577, 101], [(256, 5), (1, 0), (256, 1), (1, 1)])]
    channels = itertools.cycle([48, 5, 4, 1, 64, 3])
    return [(n, b, d, p, next(channels), 0 if i % 2 == 0 else 1 + i) for i, (n, b, d, p) in enumerate(base)]


@pytest.mark.parametrize("n,b,d,p,c,thread_seed", grid())
def test_fp32_identical_to_reference(cpu_harness, seed, n, b, d, p, c, thread_seed):
    seed(thread_seed)
    metric, exact = drawn_metric(b, n, d, p, seed=n * 7 + b + d + p)
    tokens = torch.randn(b, n, c)
    ref, out, kept, m = run(cpu_harness, tokens, metric, torch.float32, protected=p)
    assert m == n - ref.r
    assert torch.equal(kept[exact], ref.kept_index[exact])
    assert torch.equal(out[exact], ref.tokens[exact])


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("n,b,d,c", [(197, 64, 64, 64), (257, 8, 80, 3), (577, 1, 64, 8), (101, 8, 1, 2), (101, 8, 256, 16)])
def test_low_precision_reports_flips(cpu_harness, seed, dtype, n, b, d, c):
    seed(0 if dtype == torch.float16 else 5)
    metric = clustered(b, n, d, seed=n + b)
    tokens = torch.randn(b, n, c)
    ref, out, kept, m = run(cpu_harness, tokens, metric, dtype)
    assert m == n - ref.r, f"{dtype}: token count {m} vs reference {n - ref.r}"
    flips = int((kept != ref.kept_index).any(-1).sum())
    print(f"{dtype} N={n} B={b} D={d}: {flips} of {b} rows differ from the reference")
    same = (kept == ref.kept_index).all(-1)
    assert torch.equal(out[same], ref.tokens[same])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_special_cases(cpu_harness, seed, dtype):
    b, n, d = 8, 197, 64
    seed(11)
    tokens = torch.randn(b, n, 32)
    same = torch.ones(b, n, d)  # all identical: every a-row votes, r = Na, all scores tie
    ref, out, kept, m = run(cpu_harness, tokens, same, dtype)
    assert ref.r == 98 and m == n - 98 and torch.equal(kept, ref.kept_index) and torch.equal(out, ref.tokens)
    ortho = torch.eye(d).repeat(b, n // d + 1, 1)[:, :n]  # orthogonal: r = 0, identity
    ref, out, kept, m = run(cpu_harness, tokens, ortho, dtype, threshold=0.99)
    assert ref.r == 0 and m == n and torch.equal(kept, torch.arange(n).expand(b, n)) and torch.equal(out, tokens.to(dtype))
    metric, exact = drawn_metric(b, n, d, 1, seed=3)
    for fixed in (0, 10, 98, 500):
        ref, out, kept, m = run(cpu_harness, tokens, metric, dtype, fixed_r=fixed)
        assert m == n - min(fixed, 98) and kept.shape == ref.kept_index.shape
        if dtype == torch.float32:
            assert torch.equal(kept[exact], ref.kept_index[exact]) and torch.equal(out[exact], ref.tokens[exact])


@pytest.mark.parametrize("c", [1, 2, 3, 4, 5, 8])
def test_short_and_unaligned_rows(cpu_harness, seed, c):
    """Rows below 16 bytes or not a multiple of it take the scalar copy; 16-byte rows the vector one."""
    seed(c)
    metric, exact = drawn_metric(3, 61, 16, 2, seed=c)
    for dtype in (torch.float32, torch.float16):
        tokens = torch.randn(3, 61, c)
        ref, out, kept, m = run(cpu_harness, tokens, metric, dtype, protected=2)
        assert m == 61 - ref.r
        if dtype == torch.float32:
            assert torch.equal(kept[exact], ref.kept_index[exact])
        same = (kept == ref.kept_index).all(-1)
        assert torch.equal(out[same], ref.tokens[same])


def test_fewer_than_two_free_tokens_is_identity(cpu_harness):
    tokens = torch.randn(2, 2, 4)
    out, kept, m = cpu_harness.token_drop(tokens, torch.ones(2, 2, 8), LayerRule(threshold=0.5, k=1, fixed_r=5), 1)
    assert m == 2 and kept.tolist() == [[0, 1], [0, 1]] and torch.equal(out, tokens)


@pytest.mark.parametrize("p,fixed_r,thread_seed", [(1, -1, 0), (0, -1, 7), (5, 12, 3), (1, 0, 0)])
def test_per_sample_vote_identical_to_reference(cpu_harness, seed, p, fixed_r, thread_seed):
    """vote: sample — each sample votes over its own len_b real tokens, M = the longest, padding slots
    kept_index -1 / zero tokens / mask 0; with no mask every token is real."""
    seed(thread_seed)
    b, n, d, c = 6, 197, 64, 20
    lengths = torch.tensor([197, 150, 197, 61, p + 1, 120])
    mask = torch.arange(n)[None] < lengths[:, None]
    for attempt in range(20):  # a draw without a similarity near tau in any sample (as drawn_metric)
        g = torch.Generator().manual_seed(p * 100 + thread_seed + 1000 * attempt)
        # a share of each sample's tokens from 2 directions (redundant), the rest unique: different r per sample
        metric = torch.cat([torch.where(torch.rand(1, n, 1, generator=g) < share, clustered(1, n, d, seed=40 + i + attempt, clusters=2),
                                        torch.randn(1, n, d, generator=g))
                            for i, share in enumerate([0.9, 0.6, 0.3, 0.7, 0.5, 0.2])])
        ties = [near_ties(metric[i:i + 1, :length], p) for i, length in enumerate(lengths.tolist())]
        full_tau_tie, full_tied = near_ties(metric, p)
        if not full_tau_tie and not any(tau_tie for tau_tie, _ in ties):
            break
    exact = torch.tensor([not bool(tied.any()) for _, tied in ties])  # score near-ties: compared by M only
    tokens = torch.randn(b, n, c, generator=g)
    for m_in in (mask, None):
        ref = saint_drop_per_sample(tokens, metric, m_in, LayerRule(threshold=TAU, k=K, gamma=GAMMA, fixed_r=fixed_r), p)
        out, kept, mask_out = cpu_harness.token_drop_per_sample(tokens, metric, m_in, LayerRule(threshold=TAU, k=K, gamma=GAMMA, fixed_r=fixed_r), p)
        assert torch.equal(mask_out, ref.mask)
        rows = exact if m_in is not None else ~full_tied
        assert torch.equal(kept[rows], ref.kept_index[rows]) and torch.equal(out[rows], ref.tokens[rows])
        if fixed_r < 0 and m_in is not None:
            assert len(set((lengths - ref.mask.sum(1)).tolist())) > 2  # samples dropped different counts
    half = cpu_harness.token_drop_per_sample(tokens.half(), metric.half(), mask, LayerRule(threshold=TAU, k=K, gamma=GAMMA, fixed_r=fixed_r), p)
    ref = saint_drop_per_sample(tokens.half(), metric.half(), mask, LayerRule(threshold=TAU, k=K, gamma=GAMMA, fixed_r=fixed_r), p)
    assert torch.equal(half[2], ref.mask), "float16: tokens kept per sample differ from the reference"


def test_bad_parameters_are_refused(cpu_harness):
    with pytest.raises(ValueError, match="threshold"):
        cpu_harness.token_drop(torch.zeros(1, 9, 4), torch.zeros(1, 9, 4), LayerRule(threshold=2.0))


def sanitizer_runtime():
    """Paths to preload for an AddressSanitizer build in a Python process, or None."""
    cxx = shutil.which("g++") or shutil.which("c++")
    if cxx is None:
        return None
    libs = [subprocess.run([cxx, f"-print-file-name={name}"], capture_output=True, text=True).stdout.strip()
            for name in ("libasan.so", "libstdc++.so.6")]
    return libs if all(os.path.isabs(lib) and os.path.exists(lib) for lib in libs) else None


SANITIZED_CASES = textwrap.dedent("""
    import os, sys, torch
    from saint_export import LayerRule, saint_drop
    from saint_export.reference.rule import saint_drop_per_sample
    from kernel_harness import KernelHarness
    h = KernelHarness(sys.argv[1])
    g = torch.Generator().manual_seed(0)
    cases = [(101, 2, 64, 1, 48, torch.float32, 0), (64, 3, 1, 0, 3, torch.float16, 3),
             (57, 2, 256, 5, 8, torch.bfloat16, 4), (99, 2, 32, 1, 4, torch.float32, 5)]
    for n, b, d, p, c, dtype, seed in cases:
        metric = (torch.randn(6, d, generator=g)[torch.randint(0, 6, (b, n), generator=g)]
                  + 0.1 * torch.randn(b, n, d, generator=g)).to(dtype)
        tokens = torch.randn(b, n, c, generator=g).to(dtype)
        os.environ["CUDA_CPU_SEED"] = str(seed)
        for fixed in (-1, 0, 10 ** 6):
            ref = saint_drop(tokens, metric, LayerRule(fixed_r=fixed), p)
            out, kept, m = h.token_drop(tokens, metric, LayerRule(fixed_r=fixed), p)
            assert m == n - ref.r, (n, b, d, p, fixed, m, ref.r)
            if dtype == torch.float32:
                assert torch.equal(kept, ref.kept_index) and torch.equal(out, ref.tokens), (n, b, d, p, fixed)
    ones = torch.ones(2, 40, 8)
    out, kept, m = h.token_drop(ones, ones, LayerRule(), 1)
    assert m == 40 - 20, m
    mask = torch.arange(101)[None] < torch.tensor([101, 40, 2])[:, None]
    metric = (torch.randn(6, 16, generator=g)[torch.randint(0, 6, (3, 101), generator=g)]
              + 0.1 * torch.randn(3, 101, 16, generator=g))
    tokens = torch.randn(3, 101, 5, generator=g)
    ref = saint_drop_per_sample(tokens, metric, mask, LayerRule(), 1)
    got = h.token_drop_per_sample(tokens, metric, mask, LayerRule(), 1)
    assert torch.equal(got[1], ref.kept_index) and torch.equal(got[2], ref.mask) and torch.equal(got[0], ref.tokens)
    print("sanitized cases passed")
""")


def test_sanitizer_build(tmp_path):
    """AddressSanitizer + UBSan build (catches out-of-bounds shared memory) on a few cases, in a subprocess
    that preloads libasan; any sanitizer report aborts it."""
    import kernel_harness as kernels

    preload = sanitizer_runtime()
    if preload is None:
        pytest.skip("no libasan.so next to the C++ compiler")
    try:
        lib = kernels.build_cpu_harness(tmp_path / "asan", sanitize=True)
    except kernels.MissingDependencyError as exc:
        pytest.skip(f"cannot build the CPU kernels: {exc}")
    env = dict(os.environ, LD_PRELOAD=" ".join(preload), ASAN_OPTIONS="detect_leaks=0:abort_on_error=0",
               UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1",
               PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "tests")]))
    res = subprocess.run([sys.executable, "-c", SANITIZED_CASES, str(lib)], capture_output=True, text=True, env=env,
                         timeout=600)
    assert res.returncode == 0, (res.stdout + res.stderr)[-4000:]
    assert "sanitized cases passed" in res.stdout
