"""What an uploaded photo becomes before it is stored: upright, in sRGB, and without metadata.

A phone photo carries EXIF: where it was taken (GPS), the camera's make, model and serial number,
the time; often XMP, comments and a second frame too. None of that may be stored or served back.
`clean(im, data)` takes an image checked by `painting.images.open_image` and returns what to store:

- an image that carries nothing of the kind and needs no turning: its own bytes, untouched (no
  generation loss; what Gallery sends Studio arrives clean and stays byte-identical there);
- anything else, re-encoded from its pixels: turned upright by its orientation tag, its colour
  profile converted to sRGB (kept as it is when it cannot be converted: a profile says nothing about
  a person), every other piece of metadata dropped. JPEG, MPO and HEIC become JPEG (quality 95),
  PNG stays PNG, WEBP stays WEBP (lossless where the original was).
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass

from PIL import Image, ImageCms, ImageOps

# What may stay in an image's info without it being cleaned: how its pixels are laid out, never
# who, where or when.
_HARMLESS: dict[str, frozenset[str]] = {
    "PNG": frozenset({"dpi", "gamma", "srgb", "chromaticity", "transparency", "aspect"}),
    "JPEG": frozenset(
        {"jfif", "jfif_version", "jfif_unit", "jfif_density", "dpi", "progressive", "progression", "adobe"}
        | {"adobe_transform"}
    ),
    "WEBP": frozenset({"loop", "background", "duration", "timestamp"}),
}
_SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


@dataclass(frozen=True)
class Cleaned:
    """The bytes to store and what they are."""

    data: bytes
    id: str
    width: int
    height: int
    format: str


def clean(im: Image.Image, data: bytes) -> Cleaned:
    """The image as it may be stored: `data` itself when it is already clean, else re-encoded."""
    fmt = str(im.format)
    if _is_clean(im, fmt):
        return Cleaned(data, hashlib.sha256(data).hexdigest(), im.width, im.height, fmt)
    upright = ImageOps.exif_transpose(im)  # a copy, turned
    upright, profile = _in_srgb(upright, im.info.get("icc_profile"))
    # Savers take XMP, comments and the profile from `info` when not told otherwise: keep only what
    # describes the pixels, and say which profile (None: sRGB, the default) in so many words.
    upright.info = {key: value for key, value in im.info.items() if key in _HARMLESS.get(fmt, frozenset())}
    out = io.BytesIO()
    options: dict[str, object] = {"icc_profile": profile}
    if fmt == "PNG":
        upright.save(out, format="PNG", **options)
    elif fmt == "WEBP":
        lossless = bool(im.info.get("lossless")) or getattr(im, "lossless", False)
        upright.save(out, format="WEBP", lossless=lossless, quality=95, **options)
        fmt = "WEBP"
    else:  # JPEG, MPO (its first frame), HEIF
        if upright.mode not in ("RGB", "L"):
            upright = upright.convert("RGB")
        upright.save(out, format="JPEG", quality=95, **options)
        fmt = "JPEG"
    cleaned = out.getvalue()
    return Cleaned(cleaned, hashlib.sha256(cleaned).hexdigest(), upright.width, upright.height, fmt)


def _is_clean(im: Image.Image, fmt: str) -> bool:
    harmless = _HARMLESS.get(fmt)
    if harmless is None or getattr(im, "n_frames", 1) > 1:  # MPO, HEIF: always made a plain JPEG
        return False
    if any(key not in harmless for key in im.info):
        return False
    return not im.getexif()  # no orientation to apply, nothing about the camera or the place


def _in_srgb(im: Image.Image, icc: object) -> tuple[Image.Image, bytes | None]:
    """(pixels in sRGB, None), or (the pixels as they are, their profile) when it cannot be converted."""
    if not isinstance(icc, bytes) or not icc:
        return im, None
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        if im.mode not in ("RGB", "RGBA"):
            im = im.convert("RGBA" if "A" in im.mode else "RGB")
        converted = ImageCms.profileToProfile(im, source, _SRGB, outputMode=im.mode)
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        return im, icc
    return (converted if converted is not None else im), None


__all__ = ["Cleaned", "clean"]
