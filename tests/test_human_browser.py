"""The labelling page in headless Chromium: a scripted person labels real CartPole-v1 clips, by mouse and keyboard,
while the server is killed (SIGKILL) and restarted on the same store; every answer lands, each as the person chose.

Needs Debian's ``chromium`` (``.ci/run`` installs it); Playwright drives it (Playwright's own browser download is not
used). ``SOBIRL_SCREENSHOT_DIR=docs/images`` also writes the page's screenshot there (docs/labelling.md shows it).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from playwright.sync_api import sync_playwright

from sobirl.rlhf import FragmentPairs
from sobirl.rlhf.human import LabelStore, WebLabeller

CHROMIUM = shutil.which("chromium")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")

TOKEN = "browser-test-token"
THETA_LIMIT = 0.2095  # CartPole-v1 ends an episode beyond 12 degrees


def cartpole_pairs(n_pairs: int, length: int, seed: int) -> FragmentPairs:
    """``n_pairs`` pairs of the first ``length`` steps of random-policy CartPole-v1 episodes, with their frames; the
    last pair shows one fragment twice. CartPole's reward is 1 at every step, so ``true_rewards`` is the person's
    criterion instead: how upright the pole is, ``1 - |theta| / 0.2095``."""
    env = gym.make("CartPole-v1", render_mode="rgb_array")
    rng = np.random.default_rng(seed)
    fragments: list[tuple[np.ndarray, ...]] = []
    episode = 0
    while len(fragments) < 2 * n_pairs - 1:
        obs, _ = env.reset(seed=seed + episode)
        episode += 1
        steps: list[tuple[np.ndarray, int, np.ndarray]] = []
        for _ in range(length):
            action = int(rng.integers(2))
            steps.append((obs, action, env.render()))
            obs, _, terminated, _, _ = env.step(action)
            if terminated:
                break
        if len(steps) == length:
            observations, actions, frames = (np.stack(x) for x in zip(*steps, strict=True))
            fragments.append((observations, actions, 1.0 - np.abs(observations[:, 2]) / THETA_LIMIT, frames))
    env.close()
    fragments.append(fragments[-1])  # the last pair: the same fragment on both sides
    obs, act, rew, frames = (np.stack(x).reshape(n_pairs, 2, *x[0].shape) for x in zip(*fragments, strict=True))
    return FragmentPairs(obs, act, rew.astype(np.float64), frames)


def scripted_choice(true_returns: np.ndarray) -> str:
    """The scripted person: the fragment with the higher return, "equal" where they are the same."""
    left, right = true_returns
    return "equal" if left == right else ("left" if left > right else "right")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(store: Path, port: int, status: Path) -> subprocess.Popen[str]:
    """``python -m sobirl.rlhf.human.server`` on ``store``, starting (:func:`address` waits until it serves)."""
    command = [sys.executable, "-m", "sobirl.rlhf.human.server", "--store", str(store), "--port", str(port)]
    return subprocess.Popen([*command, "--token", TOKEN, "--status", str(status)], stdout=subprocess.PIPE, text=True)


def address(server: subprocess.Popen[str]) -> str:
    """The page's address, which the server prints once it serves."""
    line = server.stdout.readline()
    match = re.search(r"labelling page: (\S+)", line)
    assert match, f"the server printed {line!r}"
    return match.group(1)


def shown_pair(page) -> int:
    """The id of the pair the page shows, once it shows one."""
    page.wait_for_selector('main:not([data-pair-id=""])', timeout=15_000)
    return int(page.get_attribute("main", "data-pair-id"))


def assert_both_clips_play(page) -> None:
    """Each clip has decoded and its picture changes over time (an animation that plays)."""
    for side in ("left", "right"):
        clip = page.locator(f"#clip-{side}")
        assert clip.evaluate("img => img.complete && img.naturalWidth") == 320
        first = clip.screenshot()
        for _ in range(20):
            time.sleep(0.1)
            if clip.screenshot() != first:
                break
        else:
            pytest.fail(f"the {side} clip does not play")


def test_a_person_labels_in_chromium_across_a_server_kill(tmp_path):
    store_path, status_path, port = tmp_path / "labels.sqlite", tmp_path / "status.json", free_port()
    curve = [[step, 9.4 + 0.2 * step**0.5 * (1 + 0.2 * np.sin(step / 800))] for step in range(0, 20_001, 1000)]
    status_path.write_text(json.dumps({"budget": 40, "mode": "waits for labels", "returns": curve}))
    servers = [start_server(store_path, port, status_path)]  # it starts while the pairs are made
    try:
        pairs = cartpole_pairs(n_pairs=4, length=20, seed=0)
        returns = pairs.true_rewards.sum(axis=-1)
        wanted = {i + 1: scripted_choice(r) for i, r in enumerate(returns)}  # pair ids are 1.. in queued order
        assert set(wanted.values()) == {"left", "right", "equal"}
        with LabelStore(store_path) as store:
            WebLabeller(store, wait=False).gather(pairs)
        url = address(servers[0])
        assert url == f"http://127.0.0.1:{port}/#token={TOKEN}"
        given: dict[int, str] = {}
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM)
            page = browser.new_page(viewport={"width": 1100, "height": 820})
            page.goto(url)

            def answer(use_keyboard: bool) -> None:
                pair_id = shown_pair(page)
                choice = wanted[pair_id]
                if use_keyboard:
                    page.keyboard.press({"left": "ArrowLeft", "right": "ArrowRight", "equal": "e"}[choice])
                else:
                    page.click(f'button[data-choice="{choice}"]')
                given[pair_id] = choice

            assert shown_pair(page) == 1
            assert_both_clips_play(page)
            page.wait_for_selector("#curve polyline")
            assert page.inner_text("#mode") == "training waits for labels"
            assert page.inner_text("#counts") == "0 labelled · 4 queued · budget 40"
            screenshots = [tmp_path / "labelling-page.png"]
            if os.environ.get("SOBIRL_SCREENSHOT_DIR"):
                screenshots.append(Path(os.environ["SOBIRL_SCREENSHOT_DIR"]) / "labelling-page.png")
            for path in screenshots:
                page.screenshot(path=path)

            answer(use_keyboard=False)
            page.wait_for_function("window.sobirl.latencies.length === 1")
            answer(use_keyboard=True)
            page.wait_for_function("window.sobirl.latencies.length === 2")
            latencies = page.evaluate("window.sobirl.latencies")
            assert shown_pair(page) == 3

            servers[0].kill()  # SIGKILL mid-session: pair 3 is on screen, leased to the page
            servers[0].wait()
            with LabelStore(store_path) as store:
                assert {a.pair_id: a.choice for a in store.answers()} == given  # both answers were on disk
            answer(use_keyboard=False)  # sent while the server is down: the page retries
            page.wait_for_selector("#message.error")
            servers.append(start_server(store_path, port, status_path))
            address(servers[1])
            page.wait_for_function("window.sobirl.latencies.length === 3", timeout=15_000)
            answer(use_keyboard=True)
            page.wait_for_selector('main[data-pair-id=""]')  # nothing left to label
            page.wait_for_function("document.getElementById('counts').textContent.startsWith('4 labelled')")
            browser.close()
    finally:
        for server in servers:
            server.kill()
            server.wait()

    print(f"\nclick to next pair shown (ms), server up: {', '.join(f'{ms:.0f}' for ms in latencies)}")
    assert given == wanted
    with LabelStore(store_path) as store:
        assert {a.pair_id: a.choice for a in store.answers()} == wanted
        got, labels = WebLabeller(store, wait=False).gather(pairs[:0])
    by_choice = {"left": 1.0, "right": 0.0, "equal": 0.5}
    np.testing.assert_array_equal(labels, [by_choice[wanted[i]] for i in range(1, 5)])  # answered in queue order
    np.testing.assert_array_equal(got.observations, pairs.observations)
