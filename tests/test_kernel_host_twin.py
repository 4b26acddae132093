"""The kernels' host twin (same steps, same shared index/vote/order arithmetic as the CUDA
kernels, run on the CPU) against the reference rule. Builds the harness with CMake + nvcc;
skipped where they are missing. The CUDA code paths themselves are tested in test_cuda_kernels.py."""

import itertools
import shutil
from pathlib import Path

import pytest
import torch

from saint_export.reference.rule import saint_drop, similarity
from saint_export.reference.schedule import LayerRule  # noqa: E402

NVCC = shutil.which("nvcc") or ("/usr/local/cuda/bin/nvcc" if Path("/usr/local/cuda/bin/nvcc").exists() else None)
pytestmark = pytest.mark.skipif(NVCC is None or shutil.which("cmake") is None, reason="needs nvcc and cmake")


@pytest.fixture(scope="module")
def harness(tmp_path_factory):
    from kernel_harness import KernelHarness, build_harness

    path = build_harness(tmp_path_factory.mktemp("twin"), cuda_archs="90",
                         extra=("-DSAINT_BUILD_PLUGIN=OFF", "-DSAINT_BUILD_TESTS=OFF", "-DSAINT_BUILD_SAMPLES=OFF"))
    return KernelHarness(path)


def clustered(b, n, d, seed):
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(10, d, generator=g)
    return centres[torch.randint(0, 10, (b, n), generator=g)] + 0.15 * torch.randn(b, n, d, generator=g)


@pytest.mark.parametrize("n,b,d,p", list(itertools.product([197, 101, 257], [1, 8], [64, 80], [0, 1, 5])))
def test_host_twin_equals_reference(harness, n, b, d, p):
    metric = clustered(b, n, d, seed=n + 13 * b + d + p)
    tokens = torch.randn(b, n, 24)
    s = similarity(metric.double(), p)
    if ((s - 0.75).abs() < 1e-5).any():
        pytest.skip("a similarity lies within 1e-5 of tau in this draw")
    ref = saint_drop(tokens, metric, LayerRule(threshold=0.75, k=5, gamma=10.0, fixed_r=-1), p)
    out, kept, m = harness.token_drop_host(tokens, metric, LayerRule(threshold=0.75, k=5, gamma=10.0, fixed_r=-1), p)
    assert ref.r > 0 and m == n - ref.r
    assert torch.equal(kept, ref.kept_index)
    assert torch.equal(out, ref.tokens)


def test_host_twin_special_cases(harness):
    tokens = torch.randn(8, 197, 16)
    ones = torch.ones(8, 197, 64)
    out, kept, m = harness.token_drop_host(tokens, ones, LayerRule(threshold=0.75, k=5, gamma=10.0, fixed_r=-1), 1)  # all identical: ties, r = Na
    ref = saint_drop(tokens, ones, LayerRule(threshold=0.75, k=5, gamma=10.0, fixed_r=-1), 1)
    assert m == 197 - 98 and torch.equal(kept, ref.kept_index)
    ortho = torch.eye(64).repeat(8, 4, 1)[:, :197]
    out, kept, m = harness.token_drop_host(tokens, ortho, LayerRule(threshold=0.99, k=5, gamma=10.0, fixed_r=-1), 1)  # r = 0: identity
    assert m == 197 and torch.equal(kept, torch.arange(197).expand(8, -1)) and torch.equal(out, tokens)
    metric = clustered(3, 51, 32, seed=1)
    for fixed in (0, 7, 25, 400):
        ref = saint_drop(tokens[:3, :51], metric, LayerRule(threshold=0.75, k=5, gamma=10.0, fixed_r=fixed), 2)
        out, kept, m = harness.token_drop_host(tokens[:3, :51], metric, LayerRule(threshold=0.75, k=5, gamma=10.0, fixed_r=fixed), 2)
        assert m == 51 - ref.r and torch.equal(kept, ref.kept_index)
    two = torch.ones(2, 2, 8)  # N - P < 2: identity even with fixed_r
    out, kept, m = harness.token_drop_host(torch.randn(2, 2, 4), two, LayerRule(threshold=0.5, k=1, gamma=10.0, fixed_r=5), 1)
    assert m == 2 and kept.tolist() == [[0, 1], [0, 1]]
    with pytest.raises(ValueError, match="threshold"):
        harness.token_drop_host(tokens, ones, LayerRule(threshold=1.5))
