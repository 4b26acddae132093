"""The CUDA kernels (through the ctypes harness) against the PyTorch reference. Needs a CUDA GPU,
cmake and nvcc; skipped otherwise. Counts and kept_index must be identical in float32 wherever
the decision is numerically unambiguous (no similarity within 1e-5 of tau, no score ties within
1e-5); float16/bfloat16 rows that flip are reported, not failed."""

import itertools

import pytest
import torch

from saint_export.reference.rule import saint_drop, similarity
from saint_export.reference.schedule import LayerRule  # noqa: E402
from helpers import as_rule  # noqa: E402

pytestmark = pytest.mark.gpu

if not torch.cuda.is_available():
    pytest.skip("needs a CUDA GPU", allow_module_level=True)


@pytest.fixture(scope="module")
def harness(tmp_path_factory):
    from saint_export.errors import SaintExportError
    from kernel_harness import KernelHarness, build_harness, find_harness

    path = find_harness()
    if path is None:
        try:
            path = build_harness(tmp_path_factory.mktemp("kernels"), extra=("-DSAINT_BUILD_PLUGIN=OFF",))
        except SaintExportError as exc:
            pytest.skip(f"cannot build the kernel harness: {exc}")
    return KernelHarness(path)


def clustered_metric(b, n, d, clusters=12, noise=0.15, seed=0):
    """Tokens drawn around a few centres: real redundancy, like flat image regions."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(clusters, d, generator=g)
    assign = torch.randint(0, clusters, (b, n), generator=g)
    return centres[assign] + noise * torch.randn(b, n, d, generator=g)


def ambiguous(metric, protected, threshold):
    s = similarity(metric.double(), protected)
    return bool(((s - threshold).abs() < 1e-5).any())


def compare(harness, tokens, metric, dtype, **kw):
    ref = saint_drop(tokens.to(dtype), metric.to(dtype), *as_rule(**kw))
    out, kept, m = harness.token_drop(tokens.to(dtype).cuda(), metric.to(dtype).cuda(), *as_rule(**kw))
    return ref, out.cpu(), kept.cpu(), m


GRID = list(itertools.product([197, 257, 577, 101], [1, 8, 64], [64, 80], [0, 1, 5]))


@pytest.mark.parametrize("n,b,d,p", GRID)
def test_fp32_identical_to_reference(harness, n, b, d, p):
    metric = clustered_metric(b, n, d, seed=n * 7 + b + d + p)
    tokens = torch.randn(b, n, 48)
    kw = dict(threshold=0.75, k=5, gamma=10.0, protected=p, fixed_r=-1)
    if ambiguous(metric, p, 0.75):
        pytest.skip("a similarity lies within 1e-5 of tau in this draw")
    ref, out, kept, m = compare(harness, tokens, metric, torch.float32, **kw)
    assert m == n - ref.r
    assert torch.equal(kept, ref.kept_index)
    assert torch.equal(out, ref.tokens)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("n,b,d", [(197, 64, 64), (257, 64, 80), (577, 8, 64)])
def test_low_precision_reports_flips(harness, dtype, n, b, d):
    metric = clustered_metric(b, n, d, seed=n + b)
    tokens = torch.randn(b, n, 64)
    ref, out, kept, m = compare(harness, tokens, metric, dtype, threshold=0.75, k=5, gamma=10.0, protected=1)
    if m != n - ref.r:
        pytest.fail(f"{dtype}: token count {m} vs reference {n - ref.r}")
    flips = int((kept != ref.kept_index).any(-1).sum())
    print(f"{dtype} N={n} B={b} D={d}: {flips} of {b} rows differ from the reference")
    same = (kept == ref.kept_index).all(-1)
    assert torch.equal(out[same], ref.tokens[same])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_special_cases(harness, dtype):
    b, n, d = 8, 197, 64
    tokens = torch.randn(b, n, 32)
    same = torch.ones(b, n, d)  # all identical: every a-row votes, r = Na
    ref, out, kept, m = compare(harness, tokens, same, dtype, threshold=0.75, k=5, protected=1)
    assert ref.r == 98 and m == n - 98 and torch.equal(kept, ref.kept_index) and torch.equal(out, ref.tokens.to(out.dtype))
    noise = torch.eye(d).repeat(b, n // d + 1, 1)[:, :n]  # orthogonal-ish: r = 0, identity
    ref, out, kept, m = compare(harness, tokens, noise, dtype, threshold=0.99, k=5, protected=1)
    assert ref.r == 0 and m == n and torch.equal(kept, torch.arange(n).expand(b, n)) and torch.equal(out, tokens.to(dtype))
    for fixed in (0, 10, 98, 500):
        ref, out, kept, m = compare(harness, tokens, clustered_metric(b, n, d), dtype, protected=1, fixed_r=fixed)
        assert m == n - min(fixed, 98) and kept.shape == ref.kept_index.shape


def test_bad_parameters_are_refused(harness):
    with pytest.raises(ValueError, match="threshold"):
        harness.token_drop(torch.zeros(1, 9, 4, device="cuda"), torch.zeros(1, 9, 4, device="cuda"), LayerRule(threshold=2.0))
