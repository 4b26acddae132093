"""LLaVA's deployable vision encoder (``saint-export MODEL --vision``) and the LLaVA commands, on a
tiny random LLaVA config: the encoder equals the patched model's image features (from a
save_pretrained folder too), exports to standard ops, validates in onnxruntime, its embeddings
feed ``inputs_embeds``; bench and generate run every mode; bad input gets one line."""

import json

import onnx
import pytest
import torch
import yaml
from click.testing import CliRunner

from saint_export.cli import main
from saint_export.errors import ConfigError, InputError
from saint_export.inputs import gather_inputs
from saint_export.models.config import load_config_file

from helpers import LLAVA_IMAGE_TOKEN, LLAVA_TINY

transformers = pytest.importorskip("transformers", reason="needs transformers (pip install 'saint-export[hf]')")
ort = pytest.importorskip("onnxruntime", reason="needs onnxruntime (pip install 'saint-export[cpu]')")
from saint_export.models.llava import build_llava, build_vision  # noqa: E402
from saint_export.reference.patch import pruning  # noqa: E402
from saint_export.reference.patch.llava import LlavaSaint, apply_patch, use_mode, with_image_embeds  # noqa: E402

IMAGE = LLAVA_IMAGE_TOKEN
TINY = LLAVA_TINY


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "llava_tiny.yaml"
    path.write_text(yaml.safe_dump(TINY))
    return path


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def pixels_of(cfg, batch=3):
    return gather_inputs(cfg, batch=batch)[0]


@torch.no_grad()
def test_encoder_equals_the_patched_models_features_also_from_a_checkpoint_folder(tiny, tmp_path):
    cfg = load_config_file(tiny)
    full = build_llava(cfg, seed=3)
    folder = tmp_path / "ckpt"
    full.model.save_pretrained(folder)
    encoder = build_vision(cfg, checkpoint=folder)
    pixels = pixels_of(cfg)
    embeds, kept = encoder.module(pixels)
    with use_mode(full.model, "vit"):
        reference = torch.stack(list(full.model.model.get_image_features(pixel_values=pixels, return_dict=True).pooler_output))
    assert embeds.shape == (3, 29, 32) and torch.equal(embeds, reference)
    assert kept.shape == (3, 29) and bool((kept.diff(dim=1) > 0).all()) and int(kept.max()) < 64
    with pruning(encoder.module.tower, False), use_mode(full.model, "dense"):
        dense, all_kept = encoder.module(pixels)
        stock = torch.stack(list(full.model.model.get_image_features(pixel_values=pixels, return_dict=True).pooler_output))
    assert torch.equal(dense, stock) and torch.equal(all_kept[0], torch.arange(64))
    (folder / "model.safetensors").unlink()
    with pytest.raises(InputError, match="no .safetensors"):
        build_vision(cfg, checkpoint=folder)


def test_vision_export_validates_and_needs_no_plugin(tiny, tmp_path):
    res = run(tiny, "--vision", "--batch", "4", "--quiet")
    assert res.exit_code == 0, res.output
    assert "kept_index     [4, 29]" in res.output and "PASS identical" in res.output and "64 -> 29 per image" in res.output
    report = json.loads((tmp_path / "out/llava_tiny/vision_validation.json").read_text())
    assert report["passed"] and report["tokens_saint"] == 29 and report["layers_run"] == 3
    trt = onnx.load(str(tmp_path / "out/llava_tiny/llava_tiny_vision.trt.onnx"))
    assert {n.domain for n in trt.graph.node} <= {"", "ai.onnx"} and "TopK" in {n.op_type for n in trt.graph.node}
    dims = [[d.dim_value or d.dim_param for d in o.type.tensor_type.shape.dim] for o in trt.graph.output]
    assert dims == [["batch", 29, 32], ["batch", 29]]  # static token count: the iterative drop's
    res = run("validate", "out/llava_tiny/llava_tiny_vision.onnx", "--batch", "2")  # rebuilt from its metadata
    assert res.exit_code == 0 and "PASS" in res.output, res.output
    res = run(tiny, "--vision", "--batch", "2", "--quiet")  # re-running replaces its own files
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(main, ["check", "out/llava_tiny/llava_tiny_vision.onnx"])
    assert res.exit_code == 3 and "'saint-export validate'" in res.output, res.output
    res = run("triton", "out/llava_tiny/llava_tiny_vision.onnx", "--repo", "repo", "--name", "llava_tiny_vision")
    assert res.exit_code == 0, res.output
    config = (tmp_path / "repo/llava_tiny_vision/config.pbtxt").read_text()
    assert "dynamic_batching" in config and "dims: [ 29, 32 ]" in config  # a static count: batch-independent


def test_vision_bipartite_rule_exports_a_saint_node(tiny, tmp_path):
    res = run(tiny, "--vision", "--rule", "bipartite", "--threshold", "0.6", "--batch", "3", "--quiet", "--out", "bip")
    assert res.exit_code == 0, res.output
    nodes = onnx.load(str(tmp_path / "bip/llava_tiny_vision.trt.onnx")).graph.node
    drops = [n for n in nodes if n.domain == "saint"]
    assert [n.op_type for n in drops] == ["SaintTokenDrop"]
    assert [a.f for a in drops[0].attribute if a.name == "threshold"] == [pytest.approx(0.6)]


@torch.no_grad()
def test_exported_embeddings_feed_inputs_embeds(tiny, tmp_path):
    """The deployment path: image embeddings from onnxruntime into the language model's inputs_embeds
    give what the patched model gives in ViT-only mode (generate included)."""
    assert run(tiny, "--vision", "--batch", "2", "--quiet").exit_code == 0
    cfg = load_config_file(tiny)
    encoder = build_vision(cfg)  # seed 0: the exported weights
    model = transformers.LlavaForConditionalGeneration(transformers.LlavaConfig(**{
        k: v for k, v in TINY["model_kwargs"].items() if k != "model_type"})).eval()
    model.model.vision_tower.load_state_dict(encoder.module.tower.state_dict())
    model.model.multi_modal_projector.load_state_dict(encoder.module.projector.state_dict())
    apply_patch(model, LlavaSaint(mode="vit", vit_layer=1, keep=30, divisor=4))
    pixels = pixels_of(cfg, 2)
    session = ort.InferenceSession(str(tmp_path / "out/llava_tiny/llava_tiny_vision.onnx"))
    embeds, _ = session.run(None, {"pixels": pixels.numpy()})
    ids = torch.tensor([[1, 5, *[IMAGE] * 64, 7, 8], [0, 1, *[IMAGE] * 64, 9, 10]])
    mask = torch.tensor([[1] * 68, [0] + [1] * 67])
    inputs, short = with_image_embeds(model, torch.from_numpy(embeds), input_ids=ids, attention_mask=mask)
    assert short.shape == (2, 68 - 35) and inputs["attention_mask"].shape == short.shape
    got = model(**inputs).logits
    expected = model(input_ids=ids, attention_mask=mask, pixel_values=pixels).logits
    assert (got - expected).abs().max() <= 1e-4
    new = model.generate(**inputs, max_new_tokens=4, do_sample=False)
    assert torch.equal(new, model.generate(input_ids=ids, attention_mask=mask, pixel_values=pixels, max_new_tokens=4,
                                           do_sample=False)[:, short.shape[1]:])
    with pytest.raises(ConfigError, match="image"):
        with_image_embeds(model, torch.from_numpy(embeds[:1]), input_ids=ids)


def test_bench_and_generate_run_every_mode(tiny, tmp_path):
    res = run("bench", tiny, "--batch", "2", "--iters", "1", "--new-tokens", "2")
    assert res.exit_code == 0, res.output
    data = json.loads((tmp_path / "out/llava_tiny/bench_llava.json").read_text())
    modes = {m["mode"]: m for m in data["modes"]}
    assert list(modes) == ["dense", "vit", "llm", "hybrid"]
    assert modes["dense"]["image_tokens_in"] == 64 and modes["vit"]["image_tokens_in"] == 29
    assert modes["llm"]["image_tokens_in"] == 64 and len(modes["llm"]["kept_after_llm_layers"]) == 2
    assert modes["hybrid"]["kept_after_llm_layers"][0] < 29 and modes["hybrid"]["visual_token_layers"] < modes["vit"]["visual_token_layers"]
    assert set(data["image_features_ms"]) == {"dense", "saint", "speedup"} and "image features" in res.output
    res = run("generate", tiny, "--max-new-tokens", "3", "--modes", "dense,vit,llm,hybrid")
    assert res.exit_code == 0, res.output
    rows = {line.split()[0]: line.split() for line in res.output.splitlines()[2:6]}
    assert rows["dense"][1] == "64" and rows["vit"][1] == "29" and rows["hybrid"][1] == "29"
    assert all(row[6:] and row[5] == "ids" for row in rows.values())


def tiny_processor():
    """A LlavaProcessor built offline: a word-level tokenizer over the tiny vocabulary, CLIP's image processor."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    words = ["<pad>", "<s>", "</s>", "<unk>", *[f"w{i}" for i in range(IMAGE - 4)], "<image>", *[f"x{i}" for i in range(27)]]
    tokenizer = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = transformers.PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token="<s>", eos_token="</s>",
                                                pad_token="<pad>", unk_token="<unk>")
    fast.add_tokens(["<image>"], special_tokens=True)
    images = transformers.CLIPImageProcessor(size={"shortest_edge": 56}, crop_size={"height": 56, "width": 56})
    return transformers.LlavaProcessor(image_processor=images, tokenizer=fast, patch_size=7, image_token="<image>",
                                       vision_feature_select_strategy="default", num_additional_image_tokens=1)


@torch.no_grad()
def test_generate_with_a_checkpoints_processor_answers_in_text(tiny, tmp_path):
    from PIL import Image

    from saint_export.generate import TEMPLATE
    from saint_export.inputs import photos

    cfg = load_config_file(tiny)
    folder = tmp_path / "ckpt"
    build_llava(cfg, seed=5).model.save_pretrained(folder)
    tiny_processor().save_pretrained(folder)
    res = run("generate", tiny, "--checkpoint", folder, "--prompt", "w1 w2", "--max-new-tokens", "4", "--modes", "dense,hybrid")
    assert res.exit_code == 0, res.output
    assert "the checkpoint's processor" in res.output, res.output
    rows = {line.split()[0]: line.split() for line in res.output.splitlines() if line.startswith(("dense ", "hybrid "))}
    processor = transformers.AutoProcessor.from_pretrained(str(folder))
    stock = transformers.LlavaForConditionalGeneration.from_pretrained(str(folder)).eval()
    inputs = processor(images=Image.fromarray(photos(("astronaut",))[0]), text=TEMPLATE.format(prompt="w1 w2"), return_tensors="pt")
    ids = stock.generate(**inputs, max_new_tokens=4, do_sample=False)[0, inputs["input_ids"].shape[1]:]
    assert rows["dense"][5:] == processor.tokenizer.decode(ids, skip_special_tokens=True).split()
    assert rows["dense"][1] == "64" and rows["hybrid"][1] == "29"


def test_llava_refusals_are_one_line(tiny):
    for args, code, text in [((tiny,), 3, "--vision"), (("vit_s16", "--vision"), 3, "not a LLaVA model"),
                             ((tiny, "--vision", "--layers", "0-2"), 3, "ViT schedule"),
                             ((tiny, "--vision", "--mode", "llm"), 3, "needs mode vit or hybrid"),
                             (("inspect", tiny), 3, "vision-language"), (("vit_s16", "--keep", "3"), 3, "LLaVA options"),
                             (("generate", tiny, "--modes", "dense,fast"), 3, "'fast'"),
                             (("generate", tiny, "--llm-layers", "x"), 3, "START-END"),
                             (("bench", tiny, "--backend", "trt"), 3, "on the CPU"),  # (--device cuda: no GPU, exit 5 first)
                             (("generate", "llava15_13b"), 5, "GiB"),
                             (("generate", "llava15_small", "--weights", "pretrained"), 5, "no weights"),
                             ((tiny, "--vision", "--engine", "e.plan", "--batch", "2", "--quiet"), 5, "TensorRT")]:
        res = CliRunner().invoke(main, [str(a) for a in args])
        assert res.exit_code == code, (args, res.output)
        errors = [line for line in res.output.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and text in errors[0] and "Traceback" not in res.output, (args, res.output)
    bad = dict(TINY, llava={"mode": "vit", "keep_num": 3})
    tiny.write_text(yaml.safe_dump(bad))
    with pytest.raises(ConfigError, match="llava.keep_num"):
        load_config_file(tiny)


def test_shipped_llava_configs_have_the_published_settings():
    from saint_export.models.llava import llava_config, llava_saint, parameter_bytes
    from saint_export.models.registry import resolve

    for alias, params in (("llava15_7b", 7.06e9), ("llava15_13b", 13.35e9)):
        cfg = resolve(alias)
        saint = llava_saint(cfg)
        assert (saint.mode, saint.vit_layer, saint.keep, saint.divisor, saint.quirk) == ("hybrid", 19, 376, 16, True)
        assert (saint.llm_start, saint.llm_end, saint.llm_threshold) == (7, 16, 0.83)
        config = llava_config(cfg, "random", None)
        assert config.image_seq_length == 576 and config.vision_config.image_size // config.vision_config.patch_size == 24
        assert abs(parameter_bytes(config) / 4 - params) / params < 0.01
    assert llava_saint(resolve("llava15_7b.vit")).mode == "vit" and llava_saint(resolve("llava15_7b.llm")).mode == "llm"
    assert llava_saint(resolve("llava15_7b"), {"keep": 100, "llm_threshold": 1}).keep == 100
    for bad in ({"keep": "376"}, {"quirk": 1}, {"vit_layer": True}, {"mode": 3}):
        with pytest.raises(ConfigError, match="must be a"):
            llava_saint(resolve("llava15_7b"), bad)
