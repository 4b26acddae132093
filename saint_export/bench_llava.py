"""LLaVA prefill and decode, dense vs SAINT's three VLM modes, measured in one run on one machine.

Not a test: nothing here asserts a time. The model is patched once in hybrid mode and each mode
switches its parts (:func:`saint_export.reference.patch.llava.use_mode`), so every mode runs the
same weights on the same batch; the modes run round-robin with the order rotated every round
(:func:`saint_export.bench.interleaved`), and speedups are medians of per-round paired ratios
with their interquartile range. Beside each latency: the image tokens the language model
receives, what its pruning layers keep, and the visual token-layers it computes relative to
dense (the ideal prefill saving on the image part).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import torch

from .bench import interleaved, machine, paired_ratio
from .models.llava import BuiltLlava
from .reference.patch import llama_prefill
from .reference.patch.llava import PARTS, use_mode

MODES = tuple(PARTS)  # dense, vit, llm, hybrid


@dataclass
class ModeResult:
    mode: str
    image_tokens_in: float  # image tokens per sample entering the language model
    kept_after_llm_layers: list[float] = field(default_factory=list)  # per pruning layer, mean over samples
    visual_token_layers: float = 1.0  # image tokens summed over the LM's layers, relative to dense
    prefill_ms: float = 0.0
    prefill_speedup: tuple[float, float, float] = (1.0, 1.0, 1.0)  # median, q25, q75 of dense / this
    generate_ms: float = 0.0
    decode_ms_per_token: float = 0.0
    generate_speedup: tuple[float, float, float] = (1.0, 1.0, 1.0)


def bench_prompt(built: BuiltLlava, batch: int, text_tokens: int) -> torch.Tensor:
    """[batch, 1 + 4 + image placeholders + text_tokens] ids: a BOS, a few text ids, one image, text."""
    config = built.model.config
    image = config.image_token_id
    vocab = config.text_config.vocab_size
    text = [t for t in range(10, vocab) if t != image]
    body = [1, *text[:4], *[image] * config.image_seq_length, *text[4:4 + text_tokens]]
    return torch.tensor([body] * batch)


def _visual_token_layers(depth: int, start: int, image_in: float, kept: list[float], image_dense: int) -> float:
    per_layer = []
    for layer in range(depth):
        if layer <= start or not kept:
            per_layer.append(image_in)
        else:
            per_layer.append(kept[min(layer - start - 1, len(kept) - 1)])
    return sum(per_layer) / (depth * image_dense)


@torch.no_grad()
def bench_llava(built: BuiltLlava, pixels: torch.Tensor, *, text_tokens: int = 32, new_tokens: int = 16, rounds: int = 5,
                generate_rounds: int | None = None, modes: tuple[str, ...] = MODES,
                progress: Callable[[str], None] = lambda s: None) -> tuple[list[ModeResult], dict[str, Any]]:
    """Time prefill (``logits_to_keep=1``, ``rounds``), greedy ``generate`` of ``new_tokens`` and the
    decode steps alone (``generate_rounds`` each, default half of ``rounds``, at least 3) per mode."""
    generate_rounds = generate_rounds or max(3, rounds // 2)
    model = built.model
    ids = bench_prompt(built, pixels.shape[0], text_tokens)
    image_dense = model.config.image_seq_length
    saint = built.saint
    results = _token_counts(built, ids, pixels, modes)
    def prefill(mode: str):
        def run():
            with use_mode(model, mode):
                return model(input_ids=ids, pixel_values=pixels, logits_to_keep=1)
        return run

    def generate(mode: str, count: int):
        def run():
            with use_mode(model, mode):
                return model.generate(input_ids=ids, pixel_values=pixels, max_new_tokens=count, min_new_tokens=count,
                                      do_sample=False)
        return run

    progress(f"prefill: {rounds} interleaved rounds of {', '.join(modes)}")
    pre = interleaved({m: prefill(m) for m in modes}, warmup=1, iters=rounds, min_seconds=0, label="prefill")

    def features(mode: str):
        def run():
            with use_mode(model, mode):
                return model.model.get_image_features(pixel_values=pixels, return_dict=True)
        return run

    progress(f"vision tower + projector: {rounds} interleaved rounds, dense and pruned")
    tower = interleaved({"dense": features("dense"), "vit": features("vit")}, warmup=1, iters=rounds, min_seconds=0, label="tower")
    progress(f"generate {new_tokens} tokens: {generate_rounds} interleaved rounds")
    gen = interleaved({m: generate(m, new_tokens) for m in modes}, warmup=0, iters=generate_rounds, min_seconds=0,
                      label="generate")
    progress(f"decode steps after a prefill: {generate_rounds} interleaved rounds")
    decode = {m: [] for m in modes}
    for i in range(generate_rounds):
        for m in modes[i % len(modes):] + modes[:i % len(modes)]:
            decode[m].append(_decode_ms(model, ids, pixels, m, new_tokens))
    for r in results:
        r.prefill_ms = _median(pre[r.mode])
        r.generate_ms = _median(gen[r.mode])
        r.decode_ms_per_token = _median(decode[r.mode])
        r.prefill_speedup = paired_ratio(pre["dense"], pre[r.mode]) if "dense" in pre else (1.0, 1.0, 1.0)
        r.generate_speedup = paired_ratio(gen["dense"], gen[r.mode]) if "dense" in gen else (1.0, 1.0, 1.0)
    info = {"model": built.config.alias, "weights": built.weights, "batch": int(pixels.shape[0]), "prompt_tokens": int(ids.shape[1]),
            "image_tokens": image_dense, "new_tokens": new_tokens, "rounds": rounds, "generate_rounds": generate_rounds,
            "saint": asdict(saint), "machine": machine(),
            "image_features_ms": {"dense": _median(tower["dense"]), "saint": _median(tower["vit"]),
                                  "speedup": paired_ratio(tower["dense"], tower["vit"])}}
    return results, info


def _token_counts(built: BuiltLlava, ids: torch.Tensor, pixels: torch.Tensor, modes: tuple[str, ...]) -> list[ModeResult]:
    """Per mode: image tokens the language model gets, those kept per pruning layer, visual tokens x layers."""
    model, saint = built.model, built.saint
    lm = model.model.language_model
    results = []
    for mode in modes:
        with use_mode(model, mode):
            short = model.generate(input_ids=ids, pixel_values=pixels, max_new_tokens=1, do_sample=False)[:, :-1]
            image_in = float((short == model.config.image_token_id).sum(1).float().mean())
            kept = [sum(layer) / len(layer) for layer in llama_prefill.kept_counts(lm)] if PARTS[mode][1] else []
        results.append(ModeResult(mode, image_in, kept, _visual_token_layers(model.config.text_config.num_hidden_layers,
                                                                             saint.llm_start, image_in, kept,
                                                                             model.config.image_seq_length)))
    return results


def _decode_ms(model, ids: torch.Tensor, pixels: torch.Tensor, mode: str, steps: int) -> float:
    """ms per greedy decode step after an untimed prefill (each layer's cache as the mode left it)."""
    with use_mode(model, mode):
        out = model(input_ids=ids, pixel_values=pixels, use_cache=True, logits_to_keep=1)
        cache, token = out.cache, out.logits[:, -1].argmax(-1, keepdim=True)
        start = time.perf_counter()
        for _ in range(steps):
            out = model(input_ids=token, cache=cache, use_cache=True)
            token = out.logits[:, -1].argmax(-1, keepdim=True)
        return (time.perf_counter() - start) * 1e3 / steps


def _median(values: list[float]) -> float:
    return float(sorted(values)[len(values) // 2])


def table(results: list[ModeResult], info: dict[str, Any]) -> str:
    m = info["machine"]
    s = info["saint"]
    lines = [f"LLaVA bench: {info['model']} ({info['weights']}), batch {info['batch']}, prompt {info['prompt_tokens']} tokens "
             f"({info['image_tokens']} image), {info['new_tokens']} new tokens; {m.get('cpu', m['processor'])} x{m['cpu_count']}, "
             f"torch {m['torch']}",
             f"SAINT: tower layer {s['vit_layer']} -> {s['keep']} tokens ({s['rule']}); LM layers {s['llm_start']}..{s['llm_end']} "
             f"tau {s['llm_threshold']:g}",
             f"{'mode':<7} {'image tokens':>12}  {'kept after LM pruning layers':<30} {'visual tok-layers':>17} {'prefill ms':>10} "
             f"{'speedup (IQR)':>19} {'decode ms/tok':>13} {'generate speedup':>19}"]
    for r in results:
        kept = " ".join(f"{k:.0f}" for k in r.kept_after_llm_layers) or "-"
        p, g = r.prefill_speedup, r.generate_speedup
        lines.append(f"{r.mode:<7} {r.image_tokens_in:>12.0f}  {kept:<30} {1 / r.visual_token_layers:>16.2f}x {r.prefill_ms:>10.0f} "
                     f"{p[0]:>6.2f}x ({p[1]:.2f}-{p[2]:.2f}) {r.decode_ms_per_token:>13.1f} {g[0]:>6.2f}x ({g[1]:.2f}-{g[2]:.2f})")
    f = info["image_features_ms"]
    lines.append(f"image features (tower + projector, PyTorch): dense {f['dense']:.0f} ms, pruned {f['saint']:.0f} ms: "
                 f"{f['speedup'][0]:.2f}x (IQR {f['speedup'][1]:.2f}-{f['speedup'][2]:.2f})")
    lines.append("visual tok-layers: image tokens summed over the language model's layers, dense / this mode (the ideal "
                 "saving on the image part of prefill); speedups: medians of per-round paired ratios, interleaved")
    return "\n".join(lines)


def report_json(results: list[ModeResult], info: dict[str, Any]) -> dict[str, Any]:
    return {**info, "modes": [asdict(r) for r in results]}
