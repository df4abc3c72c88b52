"""What a person is shown of a training episode: the image of the state each action was taken in."""

from __future__ import annotations

from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
from PIL import Image

from sobirl.rlhf.human.clips import fit_width
from sobirl.validation import check_int


class RenderFrames(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Puts the rendered image of the state ``s_t`` each action is taken in into that step's ``info["frame"]``
    (uint8 ``(H, W, 3)``, downscaled to ``max_width`` pixels wide), where
    :class:`~sobirl.rlhf.EpisodeRecorder` (``frame_steps > 0``) keeps it with the step.

    Args:
        env: an environment made with ``render_mode="rgb_array"``.
        max_width: images wider than this are downscaled to it when taken (the memory a kept step costs).

    Raises:
        ValueError: ``env`` does not render ``rgb_array`` images.
    """

    def __init__(self, env: gym.Env, max_width: int = 320) -> None:
        gym.utils.RecordConstructorArgs.__init__(self, max_width=max_width)
        gym.Wrapper.__init__(self, env)
        if env.render_mode != "rgb_array":
            raise ValueError(
                f"RenderFrames needs an environment made with render_mode='rgb_array', got {env.render_mode!r}"
            )
        self.max_width = check_int("max_width", max_width, low=1)
        self._frame: np.ndarray | None = None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(seed=seed, options=options)
        self._frame = self._render()
        return obs, info

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        frame = self._frame
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._frame = self._render()
        return obs, reward, terminated, truncated, {**info, "frame": frame}

    def _render(self) -> np.ndarray:
        image = self.env.render()
        return np.asarray(fit_width(Image.fromarray(np.asarray(image, dtype=np.uint8)), self.max_width))
