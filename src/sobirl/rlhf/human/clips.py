"""A fragment's frames as a small looping animation that a browser plays in an ``<img>``: an animated WebP.

Lossy WebP (quality 70) of frames downscaled to at most 320 pixels wide takes about 20 kB per pair of 25-step
CartPole-v1 fragments and 67 kB per pair of 25-step Pendulum-v1 fragments (``benchmarks/label_clips.py``,
docs/labelling.md), a quarter to a third of a GIF's size at the same width. One :class:`ClipFormat` encodes both clips
of a pair, so they play at the same speed.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image

from sobirl.validation import check_int

CLIP_MEDIA_TYPE = "image/webp"
"""The media type of :meth:`ClipFormat.encode`'s bytes."""


@dataclass(frozen=True)
class ClipFormat:
    """How fragments become clips.

    Attributes:
        frame_ms: how long each frame is shown, in milliseconds (``>= 20``: browsers slow shorter frames down).
        max_width: frames wider than this are downscaled to it (aspect kept); None keeps their size.
        quality: lossy WebP quality, 1 (smallest) to 100.
    """

    frame_ms: int = 50
    max_width: int | None = 320
    quality: int = 70

    def __post_init__(self) -> None:
        check_int("frame_ms", self.frame_ms, low=20)
        if self.max_width is not None:
            check_int("max_width", self.max_width, low=1)
        if check_int("quality", self.quality, low=1) > 100:
            raise ValueError(f"quality must be an integer in [1, 100], got {self.quality}")

    def encode(self, frames: np.ndarray) -> bytes:
        """An animated WebP of ``frames``, uint8 ``(T, H, W, 3)`` with ``T >= 1`` (``render_mode="rgb_array"``
        images, one per step), that loops forever. Raises ``ValueError`` for frames of another dtype or shape."""
        if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3 or len(frames) < 1:
            raise ValueError(f"frames must be uint8 (T, H, W, 3) with T >= 1, got {frames.dtype} {frames.shape}")
        images = [fit_width(Image.fromarray(frame), self.max_width) for frame in frames]
        out = io.BytesIO()
        images[0].save(
            out,
            format="WEBP",
            save_all=True,
            append_images=images[1:],
            duration=self.frame_ms,
            loop=0,
            quality=self.quality,
        )
        return out.getvalue()


def fit_width(image: Image.Image, max_width: int | None) -> Image.Image:
    """``image`` downscaled to ``max_width`` pixels wide (aspect kept) when it is wider; None: as it is."""
    width, height = image.size
    if max_width is None or width <= max_width:
        return image
    return image.resize((max_width, max(1, round(height * max_width / width))), Image.Resampling.BILINEAR)
