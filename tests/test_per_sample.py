"""Batch-invariant mode (``vote: sample``): every sample votes its own r, the batch is padded to
its longest sample, and each sample's output equals its run alone (reference, timm patch, ONNX
function in onnxruntime, validate, Triton)."""

import json

import numpy as np
import onnx
import pytest
import torch
from click.testing import CliRunner
from onnx_ir.passes import PreconditionError

from helpers import redundant_batch, tiny_vit
from saint_export.cli import main
from saint_export.errors import ConfigError
from saint_export.export.pipeline import onnx_models_from_torch
from saint_export.export.trace import onnx_from_torch
from saint_export.export import passes
from saint_export.models.build import build_model
from saint_export.models.config import ModelConfig
from saint_export.models.record import ModelRecord
from saint_export.reference import patch
from saint_export.reference.ops import recording
from saint_export.reference.rule import PAD_INDEX, saint_drop, saint_drop_per_sample
from saint_export.reference.schedule import build_schedule, overrides_from_rows
from saint_export.runtimes.onnxruntime import ort_session
from saint_export.verify.invariance import batch_vs_alone
from saint_export.verify.validate import validate_onnx
from saint_export.reference.schedule import LayerRule  # noqa: E402

TINY4 = ModelConfig(alias="tiny4", name="vit_tiny_patch16_224", model_kwargs={"depth": 4}, mean=(0.5,) * 3, std=(0.5,) * 3,
                    schedule={"layers": [0, 1, 2], "threshold": 0.9, "vote": "sample"})


def clustered(batch, n, d, clusters, seed):
    """Metric rows drawn from a few directions plus noise: rows of a cluster are near-duplicates."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(clusters, d, generator=g)
    pick = torch.randint(0, clusters, (batch, n), generator=g)
    return centres[pick] + 0.05 * torch.randn(batch, n, d, generator=g)


@pytest.mark.parametrize("fixed_r", [-1, 0, 7])
@pytest.mark.parametrize("protected", [0, 1, 5])
def test_rule_equals_each_sample_alone(protected, fixed_r):
    b, n, c, d = 5, 41, 6, 8
    tokens = torch.randn(b, n, c, generator=torch.Generator().manual_seed(1))
    metric = torch.cat([clustered(1, n, d, clusters, seed=clusters) for clusters in (2, 3, 40, 4, 2)])
    lengths = [41, 30, 41, protected + 1, 17]
    mask = torch.arange(n)[None] < torch.tensor(lengths)[:, None]
    out, kept, mask_out = saint_drop_per_sample(tokens, metric, mask, LayerRule(threshold=0.8, k=3, gamma=10.0, fixed_r=fixed_r), protected)
    counts = []
    for i, length in enumerate(lengths):
        alone = saint_drop(tokens[i:i + 1, :length], metric[i:i + 1, :length], LayerRule(threshold=0.8, k=3, gamma=10.0, fixed_r=fixed_r), protected)
        m = alone.kept_index.shape[1]
        counts.append(m)
        assert torch.equal(kept[i, :m], alone.kept_index[0]) and torch.equal(out[i, :m], alone.tokens[0])
        assert (kept[i, m:] == PAD_INDEX).all() and (out[i, m:] == 0).all()
        assert mask_out[i].tolist() == [True] * m + [False] * (kept.shape[1] - m)
    assert kept.shape[1] == max(counts)
    if fixed_r != 0:
        assert len(set(counts)) > 1  # samples really kept different counts
    # padding rows of the input never influence a sample: scramble them and get the same answer
    scrambled = torch.where(mask[..., None], metric, torch.randn_like(metric))
    assert torch.equal(saint_drop_per_sample(tokens, scrambled, mask, LayerRule(threshold=0.8, k=3, gamma=10.0, fixed_r=fixed_r), protected).kept_index, kept)


def test_rule_rejects_a_mask_that_is_not_a_prefix():
    mask = torch.ones(2, 9, dtype=torch.bool)
    mask[1, 3] = False
    with pytest.raises(ValueError, match="prefix"):
        saint_drop_per_sample(torch.randn(2, 9, 4), torch.randn(2, 9, 4), mask)


@pytest.fixture(scope="module")
def pixels():
    return redundant_batch(n_synthetic=3)


@pytest.mark.parametrize("pool", ["token", "avg"])
def test_timm_batch_equals_each_sample_alone(pixels, pool):
    model = tiny_vit(global_pool=pool)
    stock = model(pixels)
    patch.timm(model, build_schedule({"layers": [0, 1, 2], "threshold": 0.9, "vote": "sample"}, 4))
    with torch.no_grad(), recording() as drops:
        batched = model(pixels)
    real = [(kept >= 0).sum(1).tolist() for _, kept in drops]
    assert any(len(set(r)) > 1 for r in real) and any(min(r) < kept.shape[1] for r, (_, kept) in zip(real, drops))
    for i in range(len(pixels)):
        with torch.no_grad(), recording() as alone_drops:
            alone = model(pixels[i:i + 1])
        assert (batched[i] - alone[0]).abs().max() <= 1e-5
        for (_, kept), (_, kept_alone) in zip(drops, alone_drops):
            m = kept_alone.shape[1]
            assert torch.equal(kept[i, :m], kept_alone[0]) and (kept[i, m:] == PAD_INDEX).all()
    with patch.pruning(model, False), torch.no_grad():
        assert torch.equal(model(pixels), stock)
    patch.remove_patch(model)
    assert type(model).__name__ == "VisionTransformer" and torch.equal(model(pixels), stock)


def test_batch_vote_does_depend_on_batch_mates(pixels):
    """The property above is not vacuous: the batch-mean vote breaks it on the same inputs."""
    model = patch.timm(tiny_vit(), build_schedule({"layers": [0, 1, 2], "threshold": 0.9}, 4))
    with torch.no_grad():
        assert batch_vs_alone(lambda x: model(torch.from_numpy(x)).numpy(), pixels.numpy()) > 1e-3


def test_schedule_vote_round_trips_and_is_checked():
    schedule = build_schedule({"layers": "0-2", "vote": "sample"}, 4)
    assert schedule.per_sample and schedule.batch_invariant() and "vote per sample" in schedule.describe()
    rows = schedule.to_json()
    assert all(row["vote"] == "sample" for row in rows)
    assert build_schedule(overrides_from_rows(rows), 4) == schedule
    assert ModelRecord({}, "random", rows, 1).batch_invariant
    assert not ModelRecord({}, "random", build_schedule({"layers": "0-2"}, 4).to_json(), 1).batch_invariant
    # dense is batch-invariant too, in the record as in the schedule (one rule: Triton batches dense models)
    assert ModelRecord({}, "random", [], 1).batch_invariant and build_schedule({"layers": "none"}, 4).batch_invariant()
    with pytest.raises(ConfigError, match="vote"):
        build_schedule({"vote": "mean"}, 4)


def test_transformers_models_refuse_per_sample_in_one_line():
    from transformers import ViTConfig, ViTModel

    model = ViTModel(ViTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64))
    from saint_export.reference.patch.transformers import apply_patch

    with pytest.raises(ConfigError, match="timm models only"):
        apply_patch(model, build_schedule({"layers": [0], "vote": "sample"}, 2))


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    built = build_model(TINY4, weights="random")
    folder = tmp_path_factory.mktemp("per_sample")
    result = onnx_models_from_torch(built, folder / "m.onnx", folder / "m.trt.onnx")
    return built, result


def test_onnx_function_equals_torch_and_each_sample_alone(exported, pixels):
    built, result = exported
    proto = onnx.load(result.portable)
    assert {o.domain: o.version for o in proto.opset_import}["saint"] == 2
    drops = [n for n in proto.graph.node if n.domain == "saint"]
    assert len(drops) == 3 and all(len(n.input) == 3 and len(n.output) == 3 for n in drops)
    assert all({a.name: a.i for a in n.attribute}["per_sample"] == 1 for n in drops)
    names = [f"{kind}_block{i}" for kind in ("kept_index", "mask") for i in (0, 1, 2)]
    session = ort_session(result.portable, "cpu", tuple(names))
    got = session.run(["logits", *names], {"pixels": pixels.numpy()})
    with torch.no_grad(), recording() as ref_drops:
        ref = built.module(pixels).numpy()
    assert np.abs(got[0] - ref).max() <= 1e-5
    for (_, kept), onnx_kept, onnx_mask in zip(ref_drops, got[1:4], got[4:7]):
        assert np.array_equal(kept.numpy(), onnx_kept) and np.array_equal(onnx_mask, onnx_kept >= 0)
    assert batch_vs_alone(lambda x: session.run(["logits"], {"pixels": x})[0], pixels.numpy()) <= 1e-5


def test_validate_proves_batch_invariance(exported, pixels):
    built, result = exported
    report = validate_onnx(result.portable, built, pixels, [f"img{i}" for i in range(len(pixels))])
    assert report.passed, report.failures
    assert set(report.batch_vs_alone) == {"torch", "onnx"} and max(report.batch_vs_alone.values()) <= 1e-5
    assert "alone" in report.table()


def test_tensorrt_lowering_gives_per_sample_plugin_nodes(exported):
    _, result = exported
    proto = onnx.load(result.tensorrt)
    assert {o.domain: o.version for o in proto.opset_import}["saint"] == 2 and not proto.functions
    for node in (n for n in proto.graph.node if n.domain == "saint"):
        attrs = {a.name: a for a in node.attribute}
        assert attrs["per_sample"].i == 1 and attrs["plugin_version"].s == b"1" and attrs["plugin_namespace"].s == b"saint"
        assert len(node.input) == 3 and [o.split("_block")[0] for o in node.output] == ["tokens", "kept_index", "mask", "kept_count"]
    mixed = onnx_from_torch(build_model(TINY4, weights="random"))
    next(n for n in passes.drop_nodes(mixed)).attributes.pop("per_sample")
    with pytest.raises(PreconditionError, match="LowerTensorRT: the model mixes"):
        passes.LowerTensorRT()(mixed)


def test_triton_batches_per_sample_onnx_only(exported, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _, result = exported
    res = CliRunner().invoke(main, ["triton", str(result.portable), "--repo", "repo"])
    assert res.exit_code == 0, res.output
    text = (tmp_path / "repo/tiny4/config.pbtxt").read_text()
    assert 'platform: "onnxruntime_onnx"' in text and "dynamic_batching" in text
    assert (tmp_path / "repo/tiny4/1/model.onnx").read_bytes() == result.portable.read_bytes()
    # the same model with a batch-vote record: Triton must not batch it
    proto = onnx.load(result.portable)
    for prop in proto.metadata_props:
        if prop.key == "saint_export.schedule":
            prop.value = json.dumps([{k: v for k, v in row.items() if k != "vote"} for row in json.loads(prop.value)])
    onnx.save(proto, tmp_path / "batch.onnx")
    res = CliRunner().invoke(main, ["triton", str(tmp_path / "batch.onnx"), "--repo", "repo", "--name", "b"])
    assert res.exit_code == 0, res.output
    assert "dynamic_batching" not in (tmp_path / "repo/b/config.pbtxt").read_text().replace("# No dynamic_batching", "")


def test_calibrate_records_each_samples_own_vote(pixels):
    from saint_export.schedules.calibrate import calibrate

    built = build_model(TINY4, weights="random")
    report, overrides = calibrate(built, pixels, batch=4)
    assert all(len(rs) == report.batches * 4 for rs in report.r_observed.values())  # one r per sample
    with recording() as drops, torch.no_grad():
        built.module(pixels[:1])
    assert report.r_observed[0][0] == 197 - drops[0][1].shape[1]  # the first sample alone drops as much
    assert "vote" not in overrides and build_schedule(overrides, 4).is_fixed()
