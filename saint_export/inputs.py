"""Test and calibration inputs: generated images with real redundancy, scikit-image photos,
user images; and timm's eval preprocessing for a ModelConfig.

Gaussian noise prunes nothing, so nothing here generates it.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from .errors import InputError
from .models.config import ModelConfig

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
PHOTO_NAMES = ("astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry", "hubble_deep_field")
DEFAULT_PHOTOS = PHOTO_NAMES[:3]


def synthetic_image(index: int, size: int = 224, seed: int = 0) -> np.ndarray:
    """uint8 [size, size, 3] with real redundancy; the pattern cycles through four kinds:
    flat colour blocks, a repeated tile, a smooth gradient with a flat sky, and a flat
    background with a few objects."""
    rng = np.random.default_rng(seed * 1000 + index)
    kind = index % 4
    img = np.zeros((size, size, 3), dtype=np.float64)
    if kind == 0:  # a few large flat rectangles
        img[:] = rng.uniform(0, 255, 3)
        for _ in range(4):
            y, x = rng.integers(0, size, 2)
            h, w = rng.integers(size // 6, size // 2, 2)
            img[y:y + h, x:x + w] = rng.uniform(0, 255, 3)
    elif kind == 1:  # one random tile repeated
        t = int(rng.choice([16, 32, 56]))
        tile = rng.uniform(0, 255, (t, t, 3))
        reps = math.ceil(size / t)
        img = np.tile(tile, (reps, reps, 1))[:size, :size]
    elif kind == 2:  # flat sky above a horizontal gradient
        horizon = int(rng.integers(size // 3, 2 * size // 3))
        img[:horizon] = rng.uniform(0, 255, 3)
        ramp = np.linspace(0, 1, size)[None, :, None]
        img[horizon:] = ramp * rng.uniform(0, 255, 3) + (1 - ramp) * rng.uniform(0, 255, 3)
    else:  # flat background, small textured objects
        img[:] = rng.uniform(0, 255, 3)
        for _ in range(3):
            y, x = rng.integers(0, size - size // 5, 2)
            s = size // 5
            img[y:y + s, x:x + s] = rng.uniform(0, 255, (s, s, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def synthetic_images(n: int, size: int = 224, seed: int = 0) -> list[np.ndarray]:
    return [synthetic_image(i, size, seed) for i in range(n)]


def photos(names: tuple[str, ...] = DEFAULT_PHOTOS) -> list[np.ndarray]:
    """RGB photos that scikit-image ships (no network)."""
    import skimage.data

    out = []
    for name in names:
        img = getattr(skimage.data, name)()
        if img.ndim == 2:
            img = np.stack([img] * 3, axis=-1)
        out.append(np.ascontiguousarray(img[..., :3]).astype(np.uint8))
    return out


def to_rgb8(im) -> np.ndarray:
    """uint8 HxWx3 of an open PIL image in any mode. 16-bit and 32-bit integer modes (I;16*, I) are
    scaled from 0..65535 to 0..255 and float images (F) from 0..1 when their values lie there (PIL's
    ``convert("RGB")`` clips them instead: a 16-bit photo became almost all 255)."""
    if im.mode.startswith("I;16") or im.mode in ("I", "F"):
        values = np.asarray(im).astype(np.float64)
        if im.mode == "F":
            scale = 255.0 if values.size and np.nanmax(values) <= 1.0 else 1.0
        else:
            scale = 255.0 / 65535.0 if im.mode.startswith("I;16") or values.max(initial=0) > 255 else 1.0
        gray = np.clip(np.nan_to_num(values * scale), 0, 255).round().astype(np.uint8)
        return np.ascontiguousarray(np.stack([gray] * 3, axis=-1))
    return np.asarray(im.convert("RGB"))


def load_image(path: str | Path) -> np.ndarray:
    """The one image reader: uint8 HxWx3 (see :func:`to_rgb8`); every failure (missing, unreadable,
    truncated, over Pillow's decompression-bomb limit) is an InputError naming the file."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            return to_rgb8(im)
    except FileNotFoundError:
        raise InputError(f"image {path} does not exist") from None
    except Image.DecompressionBombError as exc:
        raise InputError(f"cannot read image {path}: {exc} (Pillow's limit, PIL.Image.MAX_IMAGE_PIXELS = "
                         f"{Image.MAX_IMAGE_PIXELS}; twice that is refused)") from None
    except Exception as exc:  # PIL and OS errors of every kind: broken, truncated, unsupported, a folder
        reason = (str(exc).splitlines() or [""])[0][:160]
        raise InputError(f"cannot read image {path}: {type(exc).__name__}{': ' + reason if reason else ''}") from None


def image_files(directory: str | Path) -> list[Path]:
    d = Path(directory)
    if not d.is_dir():
        raise InputError(f"image directory {d} does not exist or is not a directory")
    files = sorted(p for p in d.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise InputError(f"no images ({', '.join(IMAGE_SUFFIXES)}) found under {d}")
    return files


def eval_transform(cfg: ModelConfig, module: torch.nn.Module | None = None):
    """timm's own eval transform (``resolve_data_config`` + ``create_transform``) with the config's
    input size, crop_pct, mean and std: resize the short side to S / crop_pct, centre-crop S, normalise.
    Interpolation comes from the model's pretrained config (bicubic for the ViTs here)."""
    from timm.data import create_transform, resolve_data_config

    args = {"input_size": (3, cfg.input_size, cfg.input_size), "crop_pct": cfg.crop_pct, "mean": tuple(cfg.mean),
            "std": tuple(cfg.std)}
    data_cfg = resolve_data_config(args, model=module)
    if module is None:
        data_cfg["interpolation"] = "bicubic"
    return create_transform(**data_cfg, is_training=False)


def preprocess(images: list[np.ndarray], cfg: ModelConfig, module: torch.nn.Module | None = None) -> torch.Tensor:
    """uint8 HxWx3 images -> float32 [B, 3, S, S] through :func:`eval_transform`."""
    from PIL import Image

    transform = eval_transform(cfg, module)
    batch = []
    for img in images:
        if img.ndim != 3 or img.shape[2] != 3:
            raise InputError(f"expected an RGB image HxWx3; got shape {img.shape}")
        batch.append(transform(Image.fromarray(np.ascontiguousarray(img))))
    return torch.stack(batch)


def gather_inputs(
    cfg: ModelConfig,
    images: tuple[str, ...] = (),
    image_dir: str | None = None,
    synthetic: int = 0,
    use_photos: bool = False,
    batch: int | None = None,
) -> tuple[torch.Tensor, list[str]]:
    """Collect inputs from every source asked for; default = photos + synthetic images.

    Returns (pixels [B, 3, S, S], names). With ``batch``, the list is cycled or cut to that size.
    """
    if not (images or image_dir or synthetic or use_photos):
        use_photos, synthetic = True, 5
    arrays: list[np.ndarray] = []
    names: list[str] = []
    for p in images:
        arrays.append(load_image(p))
        names.append(str(p))
    if image_dir:
        for p in image_files(image_dir):
            arrays.append(load_image(p))
            names.append(str(p))
    if use_photos:
        arrays += photos(DEFAULT_PHOTOS)
        names += [f"skimage:{n}" for n in DEFAULT_PHOTOS]
    if synthetic:
        arrays += synthetic_images(synthetic, cfg.input_size)
        names += [f"synthetic:{i}" for i in range(synthetic)]
    if batch:
        idx = [i % len(arrays) for i in range(batch)]
        arrays, names = [arrays[i] for i in idx], [names[i] for i in idx]
    return preprocess(arrays, cfg), names
