"""Prefill latency of a random LLaVA-1.5-shaped model, dense vs SAINT's ViT-only mode, on the CPU.

A scaled-down LLaVA-1.5 (CLIP tower at 336 px / patch 14 = 576 image tokens, pruned after layer
``--layer`` to 376 tokens with the official iterative drop; a Llama language model) runs one
prompt with one image per sample; dense and SAINT are timed round-robin in one run
(saint_export.bench.interleaved; paired ratios, median and IQR), then greedy decode speed.

    python tools/bench_llava.py --batch 2 --rounds 10
"""

from __future__ import annotations

import argparse


def build(args):
    import torch
    import transformers

    torch.manual_seed(0)
    vision = transformers.CLIPVisionConfig(hidden_size=args.vision_width, intermediate_size=4 * args.vision_width,
                                           num_hidden_layers=args.vision_layers, num_attention_heads=8, image_size=336, patch_size=14)
    text = transformers.LlamaConfig(hidden_size=args.text_width, intermediate_size=4 * args.text_width,
                                    num_hidden_layers=args.text_layers, num_attention_heads=8, num_key_value_heads=8,
                                    vocab_size=1000, max_position_embeddings=2048, pad_token_id=0)
    config = transformers.LlavaConfig(vision_config=vision, text_config=text, image_token_index=999, image_seq_length=576)
    return transformers.LlavaForConditionalGeneration(config).eval()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--layer", type=int, default=5, help="tower layer whose output is pruned")
    parser.add_argument("--vision-layers", type=int, default=8)
    parser.add_argument("--vision-width", type=int, default=256)
    parser.add_argument("--text-layers", type=int, default=8)
    parser.add_argument("--text-width", type=int, default=512)
    parser.add_argument("--new-tokens", type=int, default=16)
    args = parser.parse_args()

    import torch

    from saint_export.bench import interleaved, machine, paired_ratio
    from saint_export.inputs import photos, preprocess, synthetic_images
    from saint_export.models.config import ModelConfig
    from saint_export.reference.patch import pruning
    from saint_export.reference.patch.llava import LlavaSaint, apply_patch

    model = apply_patch(build(args), LlavaSaint(vit_layer=args.layer))
    cfg = ModelConfig(alias="x", timm_name="x", input_size=336, mean=(0.5,) * 3, std=(0.5,) * 3)
    pixels = preprocess((photos() + synthetic_images(args.batch, 336))[:args.batch], cfg)
    ids = torch.tensor([[1, 5, 6, 7] + [999] * 576 + list(range(10, 42))] * args.batch)
    tower = model.model.vision_tower

    def prefill(pruned: bool):
        with torch.no_grad(), pruning(tower, pruned):
            return model(input_ids=ids, pixel_values=pixels, logits_to_keep=1)

    times = interleaved({"dense": lambda: prefill(False), "saint": lambda: prefill(True)}, warmup=1, iters=args.rounds, min_seconds=0)
    speed, lo, hi = paired_ratio(times["dense"], times["saint"])
    info = machine()
    print(f"random LLaVA-1.5 shape: CLIP {args.vision_layers}x{args.vision_width} at 336 px (576 image tokens), "
          f"Llama {args.text_layers}x{args.text_width}; batch {args.batch}, prompt {ids.shape[1]} tokens; "
          f"{info.get('cpu')} x{info['cpu_count']}, torch {torch.__version__}")
    print(f"ViT-only SAINT (iterative drop after tower layer {args.layer} to 376 tokens): image tokens 576 -> 375 "
          f"({576 / 375:.2f}x fewer), prompt {ids.shape[1]} -> {ids.shape[1] - 201}")
    print(f"prefill: dense {sorted(times['dense'])[len(times['dense']) // 2]:.0f} ms, SAINT "
          f"{sorted(times['saint'])[len(times['saint']) // 2]:.0f} ms: {speed:.2f}x (IQR {lo:.2f}-{hi:.2f})")
    def generate(pruned: bool):
        with torch.no_grad(), pruning(tower, pruned):
            return model.generate(input_ids=ids, pixel_values=pixels, max_new_tokens=args.new_tokens,
                                  min_new_tokens=args.new_tokens, do_sample=False)

    gen = interleaved({"dense": lambda: generate(False), "saint": lambda: generate(True)}, warmup=0, iters=3, min_seconds=0)
    for name in ("dense", "saint"):
        seconds = sorted(gen[name])[1] / 1e3
        print(f"generate {args.new_tokens} tokens ({name}): {seconds:.2f} s incl. prefill, "
              f"{args.batch * args.new_tokens / seconds:.1f} tokens/s")
    speed, lo, hi = paired_ratio(gen["dense"], gen["saint"])
    print(f"generate: SAINT {speed:.2f}x dense (range {lo:.2f}-{hi:.2f} over 3 rounds)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
