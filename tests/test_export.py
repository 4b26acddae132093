"""Trace + lowering passes + onnxruntime parity on small ViTs (2-4 blocks from timm configs)."""

import numpy as np
import onnx
import onnx_ir as ir
import onnxruntime as ort
import pytest
import torch
from onnx_ir.passes import PostconditionError, PreconditionError

from saint_export.models.config import ModelConfig
from saint_export.errors import OutputExistsError, StageError
from saint_export.export import passes
from saint_export.export.opdef import PLUGIN_NAMESPACE, PLUGIN_VERSION
from saint_export.export.pipeline import onnx_models_from_torch
from saint_export.models.record import ModelRecord, built_from_onnx
from saint_export.export.trace import onnx_from_torch
from saint_export.inputs import photos, preprocess, synthetic_images
from saint_export.models.build import build_model
from saint_export.reference.ops import recording
from saint_export.verify.validate import validate_onnx

from helpers import TINY

DISTILLED = ModelConfig(alias="tiny_distilled", name="deit_tiny_distilled_patch16_224", model_kwargs={"depth": 3})


def inputs(cfg, n_synth=5, with_photos=True):
    imgs = (photos() if with_photos else []) + synthetic_images(n_synth, cfg.input_size)
    return preprocess(imgs, cfg)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    d = tmp_path_factory.mktemp("export")
    built = build_model(TINY, overrides={"layers": "0-2", "threshold": [0.75, 0.7, 0.75], "k": [5, 4, 5]})
    result = onnx_models_from_torch(built, d / "tiny.onnx", d / "tiny.trt.onnx")
    return built, result


def ort_run(path, pixels, extra=()):
    from pathlib import Path

    from saint_export.runtimes.onnxruntime import ort_session

    s = ort_session(Path(path), "cpu", tuple(extra))
    return s.run(["logits", *extra], {"pixels": pixels.numpy()})


def test_one_node_per_pruning_block_with_symbolic_token_dims(exported):
    built, result = exported
    model = onnx.load(str(result.portable))
    drops = [n for n in model.graph.node if n.domain == "saint"]
    assert [n.op_type for n in drops] == ["SaintTokenDrop"] * 3
    assert [n.name for n in drops] == ["saint_drop_block0", "saint_drop_block1", "saint_drop_block2"]
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in drops[1].attribute}
    assert attrs == {"threshold": pytest.approx(0.7), "k": 4, "gamma": 10.0, "protected": 1, "fixed_r": -1}
    assert [f.name for f in model.functions] == ["SaintTokenDrop"]
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    vi = {v.name: v for v in model.graph.value_info}
    dims = vi["tokens_block0"].type.tensor_type.shape.dim
    assert dims[0].dim_param == "batch" and dims[1].dim_param and not dims[1].HasField("dim_value")


def test_portable_matches_pytorch_on_redundant_batch(exported):
    built, result = exported
    pixels = inputs(TINY)
    report = validate_onnx(result.portable, built, pixels, [str(i) for i in range(len(pixels))])
    assert report.passed, report.table()
    assert report.tokens_torch == report.tokens_onnx and report.tokens_torch[-1] < 197
    assert report.outputs[0].max_abs <= 1e-4


def test_different_inputs_prune_different_counts_through_one_file(exported):
    built, result = exported
    names = [f"kept_index_block{i}" for i in range(3)]
    flat = inputs(TINY, n_synth=1, with_photos=False)  # big flat rectangles
    photo = preprocess(photos()[:1], TINY)
    counts = []
    for pixels in (flat, photo):
        got = ort_run(result.portable, pixels, names)
        with recording() as drops, torch.no_grad():
            ref = built.module(pixels)
        counts.append([k.shape[1] for k in got[1:]])
        assert counts[-1] == [k.shape[1] for _, k in drops]
        assert np.abs(got[0] - ref.numpy()).max() <= 1e-4
    assert counts[0] != counts[1]


def test_batch_mean_r_through_onnx(exported):
    built, result = exported
    pixels = inputs(TINY, n_synth=3)
    got = ort_run(result.portable, pixels, ["kept_index_block0"])
    batch_count = got[1].shape[1]
    singles = [ort_run(result.portable, pixels[i:i + 1], ["kept_index_block0"])[1].shape[1] for i in range(len(pixels))]
    r_single = [197 - c for c in singles]
    assert 197 - batch_count == sum(r_single) // len(r_single)  # first block sees the same tokens either way
    with recording() as drops, torch.no_grad():
        built.module(pixels)
    assert np.array_equal(got[1], drops[0][1].numpy())


def test_tensorrt_lowering_changes_only_the_drop_nodes(exported):
    _, result = exported
    portable, trt = onnx.load(str(result.portable)), onnx.load(str(result.tensorrt))
    assert len(trt.functions) == 0
    assert [(n.op_type, list(n.input), list(n.output)[:2]) for n in portable.graph.node] == \
           [(n.op_type, list(n.input), list(n.output)[:2]) for n in trt.graph.node]
    trt_drops = [n for n in trt.graph.node if n.domain == "saint"]
    assert [n.output[2] for n in trt_drops] == [f"kept_count_block{i}" for i in range(3)]  # the plugin's size tensor
    assert all(len(n.output) == 3 for n in trt_drops)
    for n in trt.graph.node:
        if n.domain == "saint":
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
            assert attrs["plugin_version"] == PLUGIN_VERSION.encode() and attrs["plugin_namespace"] == PLUGIN_NAMESPACE.encode()
            assert {"threshold", "k", "gamma", "protected", "fixed_r"} <= set(attrs)
    assert {i.name for i in portable.graph.initializer} == {i.name for i in trt.graph.initializer}
    with pytest.raises(Exception, match="SaintTokenDrop.* is not a registered function/op"):  # no body, no plugin
        ort.InferenceSession(str(result.tensorrt), providers=["CPUExecutionProvider"])


def test_pass_preconditions_fail_clearly(exported):
    _, result = exported
    trt = ir.load(str(result.tensorrt))
    with pytest.raises(PreconditionError, match="LowerPortable: .*already lowered for TensorRT"):
        passes.LowerPortable()(trt)
    built = build_model(TINY, overrides={"layers": "0"})
    raw = onnx_from_torch(built)
    with pytest.raises(PostconditionError, match="CheckLowered: op saint.SaintTokenDrop .* is not lowered"):
        passes.CheckLowered()(raw)
    node = passes.drop_nodes(raw)[0]
    del node.attributes["k"]
    with pytest.raises(PreconditionError, match=r"LowerTensorRT: node saint_drop_block0 lacks attribute\(s\) \['k'\]"):
        passes.LowerTensorRT()(raw)
    node.attributes["k"] = ir.AttrInt64("k", 5)
    raw.opset_imports[""] = 17
    with pytest.raises(PreconditionError, match="opset must be >= 18"):
        passes.LowerPortable()(raw)
    assert passes.LowerTensorRT()(ir.load(str(result.tensorrt))).modified is False  # already lowered: no change


def test_protected_tokens_beyond_class_token(tmp_path):
    built = build_model(DISTILLED, overrides={"layers": "all", "threshold": 0.7})
    assert built.protected == 2
    result = onnx_models_from_torch(built, tmp_path / "d.onnx", None)
    pixels = inputs(DISTILLED)
    report = validate_onnx(result.portable, built, pixels, [""] * len(pixels))
    assert report.passed, report.table()
    assert report.tokens_onnx[-1] < 198
    kept = ort_run(result.portable, pixels, ["kept_index_block0"])[1]
    assert (kept[:, :2] == [0, 1]).all()


def test_metadata_rebuilds_the_same_model(exported):
    built, result = exported
    record = ModelRecord.from_onnx(result.portable)
    assert record.alias == "tiny" and record.weights == "random(seed=0)" and record.protected == 1
    assert ModelRecord.from_json(record.to_json(), "sidecar") == record  # the engine sidecar carries the same record
    spec = record.schedule_overrides()
    assert spec["layers"] == [0, 1, 2] and spec["threshold"] == [0.75, 0.7, 0.75] and spec["k"] == [5, 4, 5]
    again = built_from_onnx(result.portable)  # "tiny" is no registered alias: the config comes from the file
    assert again.schedule == built.schedule and again.weights == built.weights
    assert all(torch.equal(a, b) for a, b in zip(again.module.state_dict().values(), built.module.state_dict().values()))


def test_atomic_and_no_clobber(tmp_path, monkeypatch):
    built = build_model(TINY, overrides={"layers": "0"})
    target = tmp_path / "m.onnx"
    target.write_bytes(b"users good model")
    with pytest.raises(OutputExistsError):
        onnx_models_from_torch(built, target, tmp_path / "m.trt.onnx")
    assert target.read_bytes() == b"users good model"

    def boom(self, model):
        raise PreconditionError("LowerTensorRT: simulated failure")

    monkeypatch.setattr(passes.LowerTensorRT, "requires", boom)
    with pytest.raises(StageError, match="passes: LowerTensorRT: simulated failure"):
        onnx_models_from_torch(built, target, tmp_path / "m.trt.onnx", force=True)
    assert target.read_bytes() == b"users good model"  # nothing replaced, nothing half-written
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]


def test_fp16_conversion_keeps_float32_interface(tmp_path):
    built = build_model(TINY, overrides={"layers": "0-1"})
    result = onnx_models_from_torch(built, tmp_path / "h.onnx", tmp_path / "h.trt.onnx", fp16=True)
    model = onnx.load(str(result.portable))
    assert {i.data_type for i in model.graph.initializer if i.data_type in (1, 10)} == {onnx.TensorProto.FLOAT16}
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert model.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    fn = model.functions[0]
    assert any(n.op_type == "Cast" and n.input[0] == "metric" for n in fn.node)  # similarity in float32
    pixels = inputs(TINY)
    report = validate_onnx(result.portable, built, pixels, [""] * len(pixels))
    assert report.tokens_onnx and all(o.got_shape for o in report.outputs)
    assert report.outputs[0].atol == 1e-2  # fp16 tolerances apply
    assert max(report.outputs[0].max_abs for _ in [0]) < 1.0
    with pytest.raises(StageError, match="ConvertFloat16: the model already holds float16 weights"):
        from saint_export.export.fp16 import ConvertFloat16
        from saint_export.export.pipeline import run_passes

        run_passes(ConvertFloat16(), ir.load(str(result.portable)))
