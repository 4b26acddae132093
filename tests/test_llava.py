"""LLaVA (transformers LlavaForConditionalGeneration) with SAINT's three VLM modes on tiny random
configs: the official iterative drop, pruning off == stock, batch 1 == a transcription of the
official algorithms (tower, language model, both), a left-padded batch == each sample alone,
generate()."""

import pytest
import torch

from official_saint_vlm import iterative_drop_full_graph, llm_only_prefill_and_decode
from saint_export.errors import ConfigError
from saint_export.inputs import photos, preprocess, synthetic_images
from saint_export.models.config import ModelConfig
from saint_export.reference.iterative import iterative_drop, round_sizes
from saint_export.reference.patch import pruning

transformers = pytest.importorskip("transformers", reason="needs transformers (pip install 'saint-export[hf]')")
from saint_export.reference.patch import llama_prefill  # noqa: E402
from saint_export.reference.patch.llava import LlavaSaint, apply_patch, remove_patch, shorten_spans, use_mode  # noqa: E402

IMAGE, PAD = 100, 0
SAINT = LlavaSaint(vit_layer=1, keep=30, divisor=4)  # 64 patches -> 29 kept


def clustered_keys(b, n, d, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(6, d, generator=g)[torch.randint(0, 6, (b, n), generator=g)] + 0.3 * torch.randn(b, n, d, generator=g)


def test_round_sizes_reproduce_the_official_divisor_quirk():
    assert round_sizes(576, 375, 16)[:4] == [36, 15, 35, 14] and sum(round_sizes(576, 375, 16)) == 201
    assert round_sizes(576, 375, 16, quirk=False)[:3] == [36, 33, 31]
    assert all(r >= 1 for r in round_sizes(40, 3, 64))  # upstream would divide by zero here


@pytest.mark.parametrize("keep,divisor", [(376, 16), (100, 4), (577, 16)])
def test_iterative_drop_equals_the_official_code_per_sample(keep, divisor):
    x = torch.randn(3, 577, 8, generator=torch.Generator().manual_seed(1))
    keys = clustered_keys(3, 577, 16, seed=keep)
    got = iterative_drop(x, keys, keep, divisor)
    assert got.tokens.shape == (3, keep, 8) and (got.kept_index.diff(dim=1) > 0).all()
    for b in range(3):
        assert torch.equal(got.tokens[b:b + 1], iterative_drop_full_graph(x[b:b + 1], keys[b:b + 1], keep, divisor))


def tiny_llava(seed=0, attention="sdpa"):
    torch.manual_seed(seed)
    vision = transformers.CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=4, num_attention_heads=2,
                                           image_size=56, patch_size=7)
    text = transformers.LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=4, num_attention_heads=4,
                                    num_key_value_heads=2, vocab_size=128, max_position_embeddings=256, pad_token_id=PAD)
    config = transformers.LlavaConfig(vision_config=vision, text_config=text, image_token_index=IMAGE, image_seq_length=64,
                                      vision_feature_layer=-2)
    model = transformers.LlavaForConditionalGeneration(config).eval()
    model.set_attn_implementation(attention)
    return model


@pytest.fixture(scope="module")
def images():
    cfg = ModelConfig(alias="x", name="x", input_size=56, mean=(0.5,) * 3, std=(0.5,) * 3)
    return preprocess(synthetic_images(2, 56) + photos()[:1], cfg)


def prompt(text_before, text_after):
    return [1, *text_before, *([IMAGE] * 64), *text_after]


def left_padded(rows):
    width = max(len(r) for r in rows)
    ids = torch.tensor([[PAD] * (width - len(r)) + r for r in rows])
    return ids, (ids != PAD).long()


@torch.no_grad()
def official_tower(model, pixels, ids, saint):
    """Batch 1: the tower run layer by layer with the official drop, LLaVA's feature selection and
    projector, the placeholders cut to the feature count. Returns (the LM's input embeddings, its ids)."""
    tower = model.model.vision_tower
    x = tower.pre_layrnorm(tower.embeddings(pixels))
    hidden = [x]
    for i, layer in enumerate(tower.encoder.layers):
        if i == saint.vit_layer:
            h = layer.layer_norm1(x)
            keys = layer.self_attn.k_proj(h).view(1, x.shape[1], -1, layer.self_attn.head_dim).mean(2)
            x = iterative_drop_full_graph(x + layer.self_attn(h, None)[0], keys, saint.keep, saint.divisor)
            x = x + layer.mlp(layer.layer_norm2(x))
        else:
            x = layer(x, None)
        hidden.append(x)
    features = model.model.multi_modal_projector(hidden[model.config.vision_feature_layer][:, 1:])
    keep = (ids != IMAGE) | (torch.cumsum(ids == IMAGE, dim=1) <= features.shape[1])
    short = ids[keep].view(1, -1)
    embeds = model.model.get_input_embeddings()(short).masked_scatter((short == IMAGE).unsqueeze(-1), features)
    return embeds, short


@torch.no_grad()
def official_vit_only(model, pixels, ids, saint):
    embeds, short = official_tower(model, pixels, ids, saint)
    return model(inputs_embeds=embeds).logits, int((short == IMAGE).sum())


def test_pruning_off_is_stock_and_vit_only_equals_the_official_algorithm(images):
    model = tiny_llava()
    ids = torch.tensor([prompt([5, 6], [7, 8, 9])])
    with torch.no_grad():
        stock = model(input_ids=ids, pixel_values=images[:1]).logits
        stock_gen = model.generate(input_ids=ids, pixel_values=images[:1], max_new_tokens=4, do_sample=False)
    apply_patch(model, SAINT)
    tower = model.model.vision_tower
    with torch.no_grad(), pruning(tower, False):
        assert torch.equal(model(input_ids=ids, pixel_values=images[:1]).logits, stock)
        assert torch.equal(model.generate(input_ids=ids, pixel_values=images[:1], max_new_tokens=4, do_sample=False), stock_gen)
    expected, features = official_vit_only(model, images[:1], ids, SAINT)
    with torch.no_grad():
        got = model(input_ids=ids, pixel_values=images[:1]).logits
    assert features == SAINT.keep - 1 and got.shape[1] == ids.shape[1] - (64 - features)
    assert (got - expected).abs().max() <= 1e-5
    remove_patch(model)
    with torch.no_grad():
        assert torch.equal(model(input_ids=ids, pixel_values=images[:1]).logits, stock)


def test_left_padded_batch_equals_each_sample_alone_and_generates(images):
    model = apply_patch(tiny_llava(seed=1), SAINT)
    rows = [prompt([5], [7, 8]), prompt([5, 6, 9, 10], [7]), prompt([], [11, 12, 13, 14])]
    ids, mask = left_padded(rows)
    with torch.no_grad():
        batch = model(input_ids=ids, attention_mask=mask, pixel_values=images).logits[:, -1]
        generated = model.generate(input_ids=ids, attention_mask=mask, pixel_values=images, max_new_tokens=5, do_sample=False)
    for i, row in enumerate(rows):
        alone_ids = torch.tensor([row])
        with torch.no_grad():
            alone = model(input_ids=alone_ids, pixel_values=images[i:i + 1]).logits[:, -1]
            alone_gen = model.generate(input_ids=alone_ids, pixel_values=images[i:i + 1], max_new_tokens=5, do_sample=False)
        assert (batch[i] - alone[0]).abs().max() <= 1e-4
        assert torch.equal(generated[i, -5:], alone_gen[0, -5:])


def test_bipartite_rule_alternative_and_refusals(images):
    model = apply_patch(tiny_llava(), LlavaSaint(vit_layer=1, rule="bipartite", threshold=0.5))
    ids = torch.tensor([prompt([5], [7])] * 2)
    with torch.no_grad():
        out = model(input_ids=ids, pixel_values=images[:2]).logits
    assert out.shape[1] < ids.shape[1]  # the vote dropped placeholders along with tokens
    with pytest.raises(ConfigError, match="vit_layer"):
        apply_patch(tiny_llava(), LlavaSaint(vit_layer=9))
    with pytest.raises(ConfigError, match="same number of images"):
        shorten_spans(torch.tensor([[IMAGE, IMAGE, 3], [3, 3, 3]]), IMAGE, 1)


# --------------------------------------------------------------------------- LLM-only and hybrid

LLM = dict(llm_start=1, llm_end=2, llm_threshold=0.5)  # the tiny Llama's 4 layers: prune after layers 1 and 2
MODES = {"llm": LlavaSaint(mode="llm", **LLM),
         "hybrid": LlavaSaint(mode="hybrid", vit_layer=1, keep=30, divisor=4, **LLM)}


@torch.no_grad()
def generated(model, steps, **inputs):
    out = model.generate(**inputs, max_new_tokens=steps, min_new_tokens=steps, do_sample=False, output_logits=True,
                         return_dict_in_generate=True)
    return out.sequences[:, -steps:], torch.stack(out.logits, dim=1)


@torch.no_grad()
def official_lm_inputs(model, pixels, ids, saint):
    """The language model's input embeddings and ids at batch 1: the official tower in hybrid mode, the
    stock one in LLM-only mode."""
    if saint.prunes_tower:
        return official_tower(model, pixels, ids, saint)
    inner = model.model
    features = inner.get_image_features(pixel_values=pixels, return_dict=True).pooler_output[0]
    return inner.get_input_embeddings()(ids).masked_scatter((ids == IMAGE).unsqueeze(-1), features.unsqueeze(0)), ids


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("quirk", [False, True])
def test_llm_modes_at_batch_1_equal_the_official_algorithm(images, mode, quirk):
    model = tiny_llava()
    ids = torch.tensor([prompt([5, 6], [7, 8, 9])])
    with torch.no_grad():
        stock = model(input_ids=ids, pixel_values=images[:1]).logits
    stock_ids, stock_logits = generated(model, 4, input_ids=ids, pixel_values=images[:1])
    saint = MODES[mode].__class__(**{**MODES[mode].__dict__, "llm_position_quirk": quirk})
    apply_patch(model, saint)
    with torch.no_grad(), pruning(model, False):
        assert torch.equal(model(input_ids=ids, pixel_values=images[:1]).logits, stock)
        off_ids, off_logits = generated(model, 4, input_ids=ids, pixel_values=images[:1])
    assert torch.equal(off_ids, stock_ids) and torch.equal(off_logits, stock_logits)

    embeds, short = official_lm_inputs(model, images[:1], ids, saint)
    sys_len, image_len = int((short[0] == IMAGE).nonzero()[0]), int((short == IMAGE).sum())
    assert image_len == (saint.keep - 1 if saint.prunes_tower else 64)  # hybrid: the LM's span is what the tower kept
    lm = model.model.language_model
    official_logits, official_ids = llm_only_prefill_and_decode(lm, model.lm_head, embeds, sys_len, image_len, 1, 2, 0.5, steps=6,
                                                      position_step=2 if quirk else 1)
    with torch.no_grad():
        got = model(input_ids=ids, pixel_values=images[:1]).logits
    kept = llama_prefill.kept_counts(lm)
    assert len(kept) == 2 and kept[0][0] < image_len and got.shape[1] == short.shape[1] - (image_len - kept[-1][0])
    assert (got[:, -1] - official_logits[:, 0]).abs().max() <= 1e-5
    new_ids, new_logits = generated(model, 6, input_ids=ids, pixel_values=images[:1])
    assert torch.equal(new_ids, official_ids) and (new_logits - official_logits).abs().max() <= 1e-5


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_llm_modes_left_padded_batch_equals_each_sample_alone(images, mode, attention):
    model = apply_patch(tiny_llava(seed=1, attention=attention), MODES[mode])
    lm = model.model.language_model
    rows = [prompt([5], [7, 8]), prompt([5, 6, 9, 10], [7]), prompt([], [11, 12, 13, 14])]
    ids, mask = left_padded(rows)
    with torch.no_grad():
        batch = model(input_ids=ids, attention_mask=mask, pixel_values=images).logits[:, -1]
    batch_kept = llama_prefill.kept_counts(lm)
    batch_ids, batch_logits = generated(model, 5, input_ids=ids, attention_mask=mask, pixel_values=images)
    for i, row in enumerate(rows):
        alone_ids = torch.tensor([row])
        with torch.no_grad():
            alone = model(input_ids=alone_ids, pixel_values=images[i:i + 1]).logits[:, -1]
        assert [layer[i] for layer in batch_kept] == [layer[0] for layer in llama_prefill.kept_counts(lm)]
        ids_i, logits_i = generated(model, 5, input_ids=alone_ids, pixel_values=images[i:i + 1])
        assert (batch[i] - alone[0]).abs().max() <= 1e-4
        assert (batch_logits[i] - logits_i[0]).abs().max() <= 1e-4 and torch.equal(batch_ids[i], ids_i[0])
    assert len(set(batch_kept[0])) > 1  # the samples kept different counts: a batch-mean vote would differ


def test_llm_mode_refusals(images):
    with pytest.raises(ConfigError, match="must lie in"):
        apply_patch(tiny_llava(), LlavaSaint(mode="llm", llm_start=2, llm_end=9))
    with pytest.raises(ConfigError, match="attention"):
        apply_patch(tiny_llava(attention="flex_attention"), MODES["llm"])
    model = apply_patch(tiny_llava(), MODES["llm"])
    ids = torch.tensor([prompt([5], [7])])
    with pytest.raises(ConfigError, match="labels"), torch.no_grad():
        model(input_ids=ids, pixel_values=images[:1], labels=ids)
    remove_patch(model)
    assert not hasattr(model.model.language_model, "_saint_prefill") and not model.model.language_model._forward_pre_hooks


def test_llm_mode_without_cache_and_with_two_images_per_sample(images):
    model = apply_patch(tiny_llava(seed=2), MODES["llm"])
    lm = model.model.language_model
    ids = torch.tensor([prompt([5], [7, 8])])
    with torch.no_grad():
        cached = model(input_ids=ids, pixel_values=images[:1]).logits
        uncached = model(input_ids=ids, pixel_values=images[:1], use_cache=False).logits
    assert cached.shape[1] < ids.shape[1] and torch.equal(cached, uncached)  # the keys come from k_proj and RoPE
    two = [[1, 5, *([IMAGE] * 64), 6, *([IMAGE] * 64), 7], [1, *([IMAGE] * 64), 9, 9, *([IMAGE] * 64), 8, 7]]
    batch_ids, mask = left_padded(two)
    pixels = torch.cat([images[:2], images[1:3]])  # images in prompt order: sample 0 has 0, 1; sample 1 has 1, 2
    with torch.no_grad():
        batch = model(input_ids=batch_ids, attention_mask=mask, pixel_values=pixels).logits[:, -1]
        kept = llama_prefill.kept_counts(lm)
        for i, row in enumerate(two):
            alone = model(input_ids=torch.tensor([row]), pixel_values=pixels[2 * i:2 * i + 2]).logits[:, -1]
            assert (batch[i] - alone[0]).abs().max() <= 1e-4
            assert [layer[0] for layer in llama_prefill.kept_counts(lm)] == [layer[i] for layer in kept]
    assert all(0 < k < 128 for layer in kept for k in layer)  # both images' tokens form one span per sample


@torch.no_grad()
def test_generate_and_forward_calls_the_way_users_make_them(images):
    """Positional input ids, beams and several return sequences, and a decode step whose switch
    differs from its prefill's: the masks belong to the cache."""
    ids = torch.tensor([prompt([5], [7, 8])] * 2)
    vit = apply_patch(tiny_llava(seed=3), SAINT)
    assert torch.equal(vit(ids, images[:2]).logits, vit(input_ids=ids, pixel_values=images[:2]).logits)
    greedy = vit.generate(ids, pixel_values=images[:2], max_new_tokens=3, do_sample=False)
    assert torch.equal(greedy, vit.generate(inputs=ids, pixel_values=images[:2], max_new_tokens=3, do_sample=False))
    short = greedy[:, :-3]  # the prompt with each image's placeholders cut to the tower's 29 features
    assert short.shape[1] == ids.shape[1] - 35
    beams = vit.generate(input_ids=ids, pixel_values=images[:2], max_new_tokens=3, num_beams=2, num_return_sequences=2,
                         do_sample=False)
    assert beams.shape[0] == 4 and torch.equal(beams[:, :short.shape[1]], short.repeat_interleave(2, 0))
    hybrid = apply_patch(tiny_llava(seed=3), MODES["hybrid"])
    out = hybrid.generate(input_ids=ids, pixel_values=images[:2], max_new_tokens=3, num_beams=2, do_sample=False)
    assert out.shape == (2, ids.shape[1] - 35 + 3)
    first = hybrid(input_ids=ids, pixel_values=images[:2], use_cache=True)
    token = first.logits[:, -1:].argmax(-1)
    cache_state = [(layer.keys.clone(), layer.values.clone()) for layer in first.cache.layers]
    step = hybrid(input_ids=token, cache=first.cache).logits
    for layer, (k, v) in zip(first.cache.layers, cache_state):
        layer.keys, layer.values = k, v
    with use_mode(hybrid, "dense"):
        assert torch.equal(hybrid(input_ids=token, cache=first.cache).logits, step)
