"""Clips: looping animated WebP, every frame kept, downscaled to the width asked for, same speed for both clips."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from sobirl.rlhf.human import ClipFormat


def decoded(clip: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(clip))
    image.load()
    return image


def test_a_clip_is_a_looping_webp_of_every_frame():
    frames = np.zeros((6, 40, 60, 3), dtype=np.uint8)
    frames[np.arange(6), :, np.arange(6) * 10] = 255  # a white column moving right
    image = decoded(ClipFormat(frame_ms=80, max_width=None).encode(frames))
    assert image.format == "WEBP" and image.is_animated and image.n_frames == 6
    assert image.size == (60, 40) and image.info["loop"] == 0 and image.info["duration"] == 80
    image.seek(3)
    column = np.asarray(image.convert("RGB"))[:, :, 0].mean(axis=0)
    assert abs(int(np.argmax(column)) - 30) <= 1  # frame 3 shows the column at x = 30 (lossy: near)


def test_wide_frames_are_downscaled_keeping_the_aspect():
    frames = np.full((3, 400, 600, 3), 128, dtype=np.uint8)
    assert decoded(ClipFormat(max_width=150).encode(frames)).size == (150, 100)
    assert decoded(ClipFormat(max_width=1000).encode(frames)).size == (600, 400)  # never upscaled


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"frame_ms": 10}, "frame_ms"), ({"max_width": 0}, "max_width"), ({"quality": 101}, "quality")],
)
def test_bad_settings_name_the_field(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ClipFormat(**kwargs)


@pytest.mark.parametrize(
    "frames",
    [np.zeros((0, 4, 4, 3), np.uint8), np.zeros((2, 4, 4), np.uint8), np.zeros((2, 4, 4, 3), np.float32)],
)
def test_frames_must_be_uint8_rgb_with_a_frame(frames):
    with pytest.raises(ValueError, match=r"uint8 \(T, H, W, 3\)"):
        ClipFormat().encode(frames)
