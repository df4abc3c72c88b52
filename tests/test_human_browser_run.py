"""A deep RLHF run labelled in headless Chromium: `sobirl rlhf --set labeller=web` serves the page of a short Pendulum
run, a scripted person answers every query by clicking, the run is SIGKILLed while it waits for an answer and resumed,
and it finishes with the person's labels in its dataset, every answer given before the kill included."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from playwright.sync_api import sync_playwright

from smoke import SMOKE
from sobirl.rlhf.checkpoints import latest_checkpoint
from sobirl.rlhf.human import LabelStore
from sobirl.rlhf.human.session import LABELS_FILE
from sobirl.rlhf.preferences import PreferenceDataset
from test_human_browser import CHROMIUM, free_port, shown_pair

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")

# 6 pairs: 4 at the reward update at step 100, 2 at step 200 (none at the last step, 300)
RUN = {**SMOKE, "total_pairs": 6, "initial_pairs": 3, "checkpoint_interval": 100, "frame_width": 160}


def start(argv: list[str]) -> subprocess.Popen[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "sobirl", *argv], stdout=subprocess.PIPE, text=True, env=env)


def page_address(run: subprocess.Popen[str]) -> str:
    """The labelling page's address the run prints once it serves."""
    for line in run.stdout:
        if match := re.search(r"labelling page: (\S+)", line):
            return match.group(1)
    pytest.fail(f"the run ended (exit {run.wait()}) without serving the labelling page")


def scripted_choice(store: LabelStore, pair_id: int) -> str:
    """The person prefers the fragment of the higher true return."""
    left, right = store.pair(pair_id).metadata["true_returns"]
    return "equal" if left == right else ("left" if left > right else "right")


def test_a_run_labelled_in_chromium_across_a_kill_finishes_with_the_persons_labels(tmp_path):
    out, port = tmp_path / "runs", free_port()
    sets = [
        arg
        for key, value in {**RUN, "labeller": "web", "label_port": port}.items()
        for arg in ("--set", f"{key}={value}")
    ]
    run = start(["rlhf", "--algo", "drlhf", "--total-steps", "300", "--output-dir", str(out), "--no-progress", *sets])
    runs = [run]
    try:
        url = page_address(run)
        (run_dir,) = out.iterdir()
        store = LabelStore(run_dir / LABELS_FILE)
        given: dict[int, str] = {}
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM)
            page = browser.new_page()
            page.goto(url)

            def answer() -> int:
                pair_id = shown_pair(page)
                for side in ("left", "right"):  # both clips decoded
                    assert page.locator(f"#clip-{side}").evaluate("img => img.complete && img.naturalWidth") == 160
                given[pair_id] = scripted_choice(store, pair_id)
                page.click(f'button[data-choice="{given[pair_id]}"]')
                page.wait_for_function(f"document.querySelector('main').dataset.pairId !== '{pair_id}'")
                return pair_id

            assert [answer() for _ in range(5)] == [1, 2, 3, 4, 5]  # the run trains on past step 100 meanwhile
            run.send_signal(signal.SIGKILL)  # waiting at step 200 for pair 6; its checkpoint is step 100's
            run.wait()
            assert {a.pair_id: a.choice for a in store.answers()} == given
            runs.append(resumed := start(["rlhf", "--resume", str(run_dir), "--no-progress"]))
            assert page_address(resumed) == url  # the same page, served again
            while resumed.poll() is None:  # answer what the resumed run asks (pair 6, and new pairs where it
                if page.get_attribute("main", "data-pair-id"):  # could not restore its episode exactly)
                    answer()
                page.wait_for_timeout(200)
            assert resumed.returncode == 0
            browser.close()
    finally:
        for process in runs:
            process.kill()
            process.wait()

    assert {a.pair_id: a.choice for a in store.answers()} == given and len(given) >= 6
    dataset = PreferenceDataset.load(latest_checkpoint(run_dir) / "dataset.npz")
    pairs, labels = dataset.contents()
    by_returns = {tuple(store.pair(i).metadata["true_returns"]): choice for i, choice in given.items()}
    choices = [by_returns[tuple(r)] for r in pairs.true_rewards.sum(axis=-1).tolist()]  # each a pair of the store
    np.testing.assert_array_equal(labels, [{"left": 1.0, "right": 0.0, "equal": 0.5}[c] for c in choices])
    assert len(labels) == len(given)  # every answer, those given before the kill too
    assert latest_checkpoint(run_dir).name == "step-300" and Path(run_dir / "policy.zip").is_file()
