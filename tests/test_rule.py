"""The reference rule on hand-built cases, where the right answer is worked out by hand."""

import math

import pytest
import torch

from saint_export.reference.rule import row_scores, saint_drop, similarity, vote_r
from saint_export.reference.schedule import LayerRule  # noqa: E402


def unit(*xs):
    v = torch.tensor(xs, dtype=torch.float32)
    return v / v.norm()


def e(i, d=6):
    v = torch.zeros(d)
    v[i] = 1.0
    return v


def with_metric(a_rows, b_rows, protected_rows=()):
    """Interleave a/b rows into metric [1, N, D]: positions P+0, P+2.. are a, P+1, P+3.. are b."""
    seq = list(protected_rows)
    for i in range(max(len(a_rows), len(b_rows))):
        if i < len(a_rows):
            seq.append(a_rows[i])
        if i < len(b_rows):
            seq.append(b_rows[i])
    return torch.stack(seq)[None]


def tokens_for(metric, c=3):
    b, n, _ = metric.shape
    return torch.arange(b * n * c, dtype=torch.float32).reshape(b, n, c)


def hand_case():
    # a0 == b0 == b1 (2 edges), a1 == b2 (1 edge), a2 orthogonal to all, a3 at cos 0.8 to b3
    b3 = e(3)
    a3 = 0.8 * e(3) + 0.6 * e(4)
    a = [e(0), e(1), e(5), a3]
    b = [e(0), e(0), e(1), b3]
    return with_metric(a, b, protected_rows=[e(2)])  # P = 1, N = 9


def test_duplicates_dropped_first_and_output_order():
    metric = hand_case()
    tokens = tokens_for(metric)
    out, kept, r = saint_drop(tokens, metric, LayerRule(threshold=0.75, k=1, gamma=10.0), 1)
    # a0 (2 edges) > a1 (1 exact edge) > a3 (1 edge at 0.8) are the 3 voting rows; a2 kept
    assert r == 3
    assert kept.tolist() == [[0, 5, 2, 4, 6, 8]]
    assert torch.equal(out, tokens[:, kept[0]])


def test_scores_match_the_formula():
    metric = hand_case()
    s = similarity(metric, 1)
    cnt = (s >= 0.75).sum(-1)
    score = row_scores(s, cnt, 0.75, 10.0)[0]
    assert score[0].item() == pytest.approx(2 * math.exp(10 * 0.25), rel=1e-6)
    assert score[1].item() == pytest.approx(math.exp(10 * 0.25), rel=1e-6)
    assert score[2].item() == pytest.approx(0.0, abs=1e-7)  # no edge: plain row mean
    assert score[3].item() == pytest.approx(math.exp(10 * 0.05), rel=1e-5)


def test_k_requires_enough_edges():
    metric = hand_case()
    assert saint_drop(tokens_for(metric), metric, LayerRule(threshold=0.75, k=2), 1).r == 1  # only a0 has 2 edges
    assert saint_drop(tokens_for(metric), metric, LayerRule(threshold=0.75, k=3), 1).r == 0


def test_batch_mean_vote_is_floored_integer():
    votes = torch.tensor([[5, 5, 5, 0], [0, 0, 0, 0]])  # 3 + 0 voting rows, B = 2 -> r = 1
    assert vote_r(votes, k=5) == 1
    votes3 = torch.tensor([[9, 9, 0], [9, 9, 0], [9, 0, 0]])  # 2 + 2 + 1 = 5, B = 3 -> 1
    assert vote_r(votes3, k=1) == 1
    assert vote_r(torch.tensor([[9, 9, 9]] * 4), k=1) == 3


def test_batch_shares_r_but_not_order():
    m1 = hand_case()  # 3 voting rows at k=1 (a0, a1, a3)
    m2 = torch.stack([e(2)] + [e(0)] * 8)[None]  # every a-row matches every b-row: 4 voting rows
    metric = torch.cat([m1, m2])
    tokens = tokens_for(metric)
    out, kept, r = saint_drop(tokens, metric, LayerRule(threshold=0.75, k=1), 1)
    assert r == (3 + 4) // 2
    assert out.shape == (2, 9 - r, 3)
    assert kept[0].tolist() == [0, 5, 2, 4, 6, 8]  # sample 0 drops a0, a1, a3 (its highest scores)
    assert kept[1].tolist() == [0, 7, 2, 4, 6, 8]  # sample 1: all tied, lowest indices go first
    for b in range(2):
        assert torch.equal(out[b], tokens[b, kept[b]])


def test_ties_drop_lower_index_first():
    # every a-row identical to every b-row: equal scores everywhere
    d = unit(1, 2, 3)
    metric = torch.stack([d] * 9)[None]  # P = 1, Na = 4, Nb = 4
    out, kept, r = saint_drop(tokens_for(metric), metric, LayerRule(threshold=0.5, k=1, fixed_r=2), 1)
    assert r == 2
    # a positions are 1,3,5,7; a0 and a1 (positions 1, 3) go; remaining a in index order
    assert kept.tolist() == [[0, 5, 7, 2, 4, 6, 8]]


def test_all_identical_tokens_drop_every_a_token():
    metric = torch.ones(2, 11, 4)
    out, kept, r = saint_drop(tokens_for(metric), metric, LayerRule(threshold=0.75, k=5), 1)
    assert r == 5  # Na = 5 rows, each with Nb = 5 >= K edges
    assert kept[0].tolist() == [0, 2, 4, 6, 8, 10]


def test_protected_tokens_are_never_dropped():
    metric = torch.ones(1, 10, 4)  # everything identical, protected included
    out, kept, r = saint_drop(tokens_for(metric), metric, LayerRule(threshold=0.0, k=1, fixed_r=100), 3)
    assert r == 4  # clamped to Na = ceil(7 / 2)
    assert kept[0, :3].tolist() == [0, 1, 2]
    assert set(kept[0].tolist()) == {0, 1, 2, 4, 6, 8}


def test_r_zero_returns_input_unchanged():
    metric = torch.stack([e(i % 6) for i in range(9)])[None]
    tokens = tokens_for(metric)
    out, kept, r = saint_drop(tokens, metric, LayerRule(threshold=0.99, k=5), 1)
    assert r == 0
    assert out is tokens
    assert kept.tolist() == [list(range(9))]


def test_fixed_r_ignores_the_vote():
    metric = torch.stack([e(i % 6) for i in range(9)])[None]  # orthogonal-ish: vote says 0
    assert saint_drop(tokens_for(metric), metric, LayerRule(threshold=0.99), 1).r == 0
    res = saint_drop(tokens_for(metric), metric, LayerRule(threshold=0.99, fixed_r=3), 1)
    assert res.r == 3 and res.tokens.shape[1] == 6
    assert saint_drop(tokens_for(metric), metric, LayerRule(fixed_r=99), 1).r == 4
    assert saint_drop(tokens_for(metric), metric, LayerRule(threshold=-1.0, k=1, fixed_r=0), 1).r == 0


@pytest.mark.parametrize("n", [1, 2, 3, 8, 9, 197, 198])
def test_odd_and_even_lengths(n):
    torch.manual_seed(n)
    metric = torch.randn(2, n, 8)
    metric[:, 1::3] = metric[:, 0:1]  # plenty of duplicates of token 0
    tokens = torch.randn(2, n, 5)
    out, kept, r = saint_drop(tokens, metric, LayerRule(threshold=0.9, k=1), 1)
    na = (n - 1 + 1) // 2
    assert 0 <= r <= max(na, 0)
    assert out.shape == (2, n - r, 5)
    for b in range(2):
        assert sorted(kept[b].tolist()) == sorted(set(kept[b].tolist()))  # no repeats
        assert torch.equal(out[b], tokens[b, kept[b]])
        dropped = set(range(n)) - set(kept[b].tolist())
        assert all(i >= 1 and (i - 1) % 2 == 0 for i in dropped)  # only a-side tokens go


def test_too_short_sequence_is_identity_even_with_fixed_r():
    metric = torch.ones(1, 2, 4)
    res = saint_drop(tokens_for(metric), metric, LayerRule(fixed_r=5), 1)
    assert res.r == 0 and res.kept_index.tolist() == [[0, 1]]


def test_zero_metric_vectors_give_no_nan():
    metric = torch.zeros(1, 9, 4)
    metric[0, 2] = 1.0
    res = saint_drop(tokens_for(metric), metric, LayerRule(threshold=0.5, k=1, fixed_r=2), 1)
    assert res.r == 2 and not torch.isnan(res.tokens).any()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_low_precision_inputs(dtype):
    metric = hand_case().to(dtype)
    tokens = tokens_for(metric).to(dtype)
    out, kept, r = saint_drop(tokens, metric, LayerRule(threshold=0.75, k=1, gamma=10.0), 1)
    assert out.dtype == dtype and kept.dtype == torch.int64
    assert r == 3 and kept.tolist() == [[0, 5, 2, 4, 6, 8]]
    assert torch.equal(out, tokens[:, kept[0]])


def test_shape_errors():
    with pytest.raises(ValueError):
        saint_drop(torch.zeros(1, 5, 3), torch.zeros(1, 4, 3))
