"""Dense and SAINT answers side by side for one image and one prompt (``saint-export generate``),
each with its prefill latency, total time and decode rate.

With a checkpoint that has a processor (a ``save_pretrained`` LLaVA folder), the prompt goes
through LLaVA-1.5's conversation template and the processor; answers are decoded text. Random
weights have no tokenizer: the prompt's UTF-8 bytes become token ids and the answers are ids.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from .inputs import preprocess
from .models.llava import BuiltLlava
from .reference.patch.llava import use_mode

TEMPLATE = "USER: <image>\n{prompt} ASSISTANT:"  # LLaVA-1.5's conversation format
BYTE_OFFSET = 3  # ids 0..2 are pad/BOS/EOS in Llama vocabularies


@dataclass
class Answer:
    mode: str
    text: str
    new_ids: list[int]
    image_tokens: int  # image tokens the language model received
    prefill_ms: float
    total_ms: float

    @property
    def tokens_per_s(self) -> float:
        return len(self.new_ids) / max(self.total_ms / 1e3, 1e-9)


def model_inputs(built: BuiltLlava, image: np.ndarray, prompt: str) -> tuple[dict[str, torch.Tensor], str]:
    """The model's inputs for one image and prompt, and how the prompt was tokenized."""
    from PIL import Image

    config = built.model.config
    if built.processor is not None:
        inputs = built.processor(images=Image.fromarray(image), text=TEMPLATE.format(prompt=prompt), return_tensors="pt")
        return dict(inputs), "the checkpoint's processor, LLaVA-1.5 template"

    vocab, token = config.text_config.vocab_size, config.image_token_id
    ids = [BYTE_OFFSET + b % (vocab - BYTE_OFFSET) for b in ("\n" + prompt).encode()]
    ids = [i if i != token else i + 1 for i in ids]
    row = [1, *[token] * config.image_seq_length, *ids]
    return ({"input_ids": torch.tensor([row]), "pixel_values": preprocess([image], built.config)},
            "no tokenizer (random weights): the prompt's UTF-8 bytes as ids")


def _decode(built: BuiltLlava, ids: list[int]) -> str:
    if built.processor is not None:
        return built.processor.tokenizer.decode(ids, skip_special_tokens=True).strip()
    return "ids " + " ".join(map(str, ids))


@torch.no_grad()
def answer(built: BuiltLlava, inputs: dict[str, torch.Tensor], mode: str, max_new_tokens: int) -> Answer:
    model = built.model
    with use_mode(model, mode):
        start = time.perf_counter()
        model(**inputs, logits_to_keep=1)
        prefill = (time.perf_counter() - start) * 1e3
        start = time.perf_counter()
        out = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False, return_dict_in_generate=True,
                             output_scores=True)
        total = (time.perf_counter() - start) * 1e3
    prompt = out.sequences.shape[1] - len(out.scores)  # the prompt is shortened where the tower prunes
    new = out.sequences[0, prompt:].tolist()
    image_tokens = int((out.sequences[0, :prompt] == model.config.image_token_id).sum())
    return Answer(mode, _decode(built, new), new, image_tokens, prefill, total)


def side_by_side(answers: list[Answer]) -> str:
    lines = [f"{'mode':<7} {'image tokens':>12} {'prefill ms':>10} {'total ms':>9} {'tokens/s':>8}  answer"]
    for a in answers:
        lines.append(f"{a.mode:<7} {a.image_tokens:>12} {a.prefill_ms:>10.0f} {a.total_ms:>9.0f} {a.tokens_per_s:>8.1f}  {a.text}")
    lines.append("(one run each: indicative timings; 'saint-export bench MODEL' measures them interleaved)")
    return "\n".join(lines)
