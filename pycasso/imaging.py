"""Image plumbing around the engine: decode and check inputs, resize, VGG pre/de-processing, colour.

Numpy and Pillow only (no TensorFlow), so the CLI and the worker can reject a bad input before
paying for the model. What counts as an acceptable image is `painting.images.open_image`'s rule,
the same one Gallery and Studio apply on upload. Arrays named `rgb` are (H, W, 3) uint8 RGB; `vgg` arrays are (H, W, 3)
float32, BGR, ImageNet mean subtracted.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageOps

from painting import errors as painting_errors
from painting import images as painting_images
from painting.images import DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS
from painting.params import painting_shape as shape_rule
from pycasso.errors import ImageTooLarge, InvalidImage, InvalidParams

# BGR means of the ImageNet training set, as VGG was trained (Simonyan & Zisserman).
VGG_MEAN_BGR = np.array([103.939, 116.779, 123.68], dtype=np.float32)


def decode_image(
    data: bytes, *, what: str = "image", max_bytes: int = DEFAULT_MAX_BYTES, max_pixels: int = DEFAULT_MAX_PIXELS
) -> np.ndarray:
    """Decode an image into (H, W, 3) uint8 RGB by `painting.images`' one rule, refusing anything else.

    The camera's orientation tag is applied (a portrait photo stays upright), transparency is laid
    on white, and 16-bit images are scaled to 8 bits rather than clipped. Raises this package's
    ImageTooLarge or InvalidImage, their message starting with `what`.
    """
    try:
        with painting_images.open_image(data, max_bytes=max_bytes, max_pixels=max_pixels) as image:
            return _to_rgb(ImageOps.exif_transpose(image))
    except painting_errors.ImageTooLarge as exc:
        raise ImageTooLarge(f"{what}: {exc}") from None
    except painting_errors.InvalidImage as exc:
        raise InvalidImage(f"{what}: {exc}") from None
    except (OSError, SyntaxError, ValueError) as exc:  # a damaged orientation tag, say
        raise InvalidImage(f"{what}: the image is damaged or truncated: {exc}") from exc


def _to_rgb(image: Image.Image) -> np.ndarray:
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):  # 16-bit (or wider) grey: scale, do not clip
        grey = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode != "F" and grey.max() > 255 else 255.0
        grey8 = np.clip(np.rint(grey * (255.0 / top)), 0, 255).astype(np.uint8)
        return np.repeat(grey8[..., None], 3, axis=2)
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        backdrop = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(backdrop, rgba)
    return np.asarray(image.convert("RGB"), dtype=np.uint8).copy()


def encode_png(rgb: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb, "RGB").save(buffer, format="PNG")
    return buffer.getvalue()


def resize(rgb: np.ndarray, height: int, width: int) -> np.ndarray:
    if rgb.shape[:2] == (height, width):
        return rgb
    return np.asarray(Image.fromarray(rgb, "RGB").resize((width, height), Image.Resampling.LANCZOS))


def painting_shape(content_shape: tuple[int, ...], size: int) -> tuple[int, int]:
    """(height, width) of the painting: height `size`, width following the photo's aspect ratio.

    `content_shape` is the upright photo's array shape (H, W, ...). The rule is `painting.params.
    painting_shape`'s, the one Gallery and Studio apply on upload; here it raises InvalidParams.
    """
    h, w = content_shape[:2]
    try:
        return shape_rule(w, h, size)
    except ValueError as exc:
        raise InvalidParams(str(exc)) from None


def style_shape(style_shape_: tuple[int, ...], painting_hw: tuple[int, int], scale: float) -> tuple[int, int]:
    """Size of a style image: the painting's area times scale², the style's own aspect ratio."""
    sh, sw = style_shape_[:2]
    area = painting_hw[0] * painting_hw[1] * scale * scale
    height = max(16, round((area * sh / sw) ** 0.5))
    width = max(16, round(area / height))
    return height, width


def to_vgg(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> (H, W, 3) float32, BGR, mean-subtracted."""
    return rgb[..., ::-1].astype(np.float32) - VGG_MEAN_BGR


def from_vgg(vgg: np.ndarray) -> np.ndarray:
    """Inverse of `to_vgg`, rounded and clipped to uint8 RGB."""
    bgr = vgg + VGG_MEAN_BGR
    return np.clip(np.rint(bgr[..., ::-1]), 0, 255).astype(np.uint8)


def vgg_bounds(shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Per-element box bounds in VGG space: each channel's 0..255 minus its mean."""
    lower = np.broadcast_to(-VGG_MEAN_BGR, shape).astype(np.float64).ravel()
    upper = np.broadcast_to(255.0 - VGG_MEAN_BGR, shape).astype(np.float64).ravel()
    return lower, upper


# --- colour: luminance-only transfer (Gatys et al. 2016, "Preserving colour") -------------------
# ITU-R BT.601 YCbCr, full range, as in JPEG.
_RGB_TO_YCBCR = np.array(
    [[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]], dtype=np.float32
)
_YCBCR_TO_RGB = np.linalg.inv(_RGB_TO_YCBCR).astype(np.float32)


def rgb_to_ycbcr(rgb: np.ndarray) -> np.ndarray:
    """uint8 RGB -> float32 YCbCr with Cb, Cr centred on 0."""
    return rgb.astype(np.float32) @ _RGB_TO_YCBCR.T


def ycbcr_to_rgb(ycbcr: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(ycbcr @ _YCBCR_TO_RGB.T), 0, 255).astype(np.uint8)


def luminance_rgb(rgb: np.ndarray) -> np.ndarray:
    """The image's luminance as a grey RGB image."""
    y = np.clip(np.rint(rgb_to_ycbcr(rgb)[..., 0]), 0, 255).astype(np.uint8)
    return np.repeat(y[..., None], 3, axis=2)


def with_chroma_of(luma_source: np.ndarray, chroma_source: np.ndarray) -> np.ndarray:
    """Luminance of `luma_source`, colour (Cb, Cr) of `chroma_source`; both (H, W, 3) uint8 RGB."""
    ycbcr = rgb_to_ycbcr(chroma_source)
    ycbcr[..., 0] = rgb_to_ycbcr(luma_source)[..., 0]
    return ycbcr_to_rgb(ycbcr)


__all__ = [
    "VGG_MEAN_BGR",
    "decode_image",
    "encode_png",
    "from_vgg",
    "luminance_rgb",
    "painting_shape",
    "resize",
    "rgb_to_ycbcr",
    "style_shape",
    "to_vgg",
    "vgg_bounds",
    "with_chroma_of",
    "ycbcr_to_rgb",
]
