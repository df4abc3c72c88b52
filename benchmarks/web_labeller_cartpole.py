"""CartPole-v1 `drlhf` labelled through the labelling page's HTTP API by a scripted person, against the synthetic
labeller, on the same seeds and label budget.

The person answers as the synthetic labeller draws (Bradley-Terry at temperature 1 on the fragments' true returns,
from its own generator), so the two arms differ only in the path the labels take: rendered episodes, clips, the
SQLite store, the server, HTTP, and training waiting for the answers. Prints the final and last-5 evaluation returns
per arm (mean +/- standard error over seeds) and the per-seed finals.

    python benchmarks/web_labeller_cartpole.py --seeds 3 --total-steps 20000 --output runs/web-labels
"""

from __future__ import annotations

import argparse
import json
import math
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from sobirl.experiments import write_config
from sobirl.experiments.aggregate import mean_and_se
from sobirl.rlhf.config import RLHFConfig
from sobirl.rlhf.human import LabelStore
from sobirl.rlhf.human.session import LABELS_FILE
from sobirl.rlhf.trainer import RLHFTrainer

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "cartpole-cpu.yaml"
ARMS = ("synthetic", "web")


def person(url: str, store_path: Path, seed: int, stop: threading.Event) -> None:
    """Answer every pair the page hands out, through the API, as the synthetic labeller would draw."""
    rng = np.random.default_rng([seed, 2026])
    store = None
    while not stop.is_set():
        try:
            with urllib.request.urlopen(f"{url}/api/next?client=person", timeout=10) as response:
                pair = json.load(response)["pair"]
        except (urllib.error.URLError, ConnectionError):  # the run has not started serving yet
            stop.wait(0.2)
            continue
        if pair is None:
            stop.wait(0.05)
            continue
        store = store or LabelStore(store_path)
        left, right = store.pair(pair["id"]).metadata["true_returns"]
        choice = "left" if rng.random() < 1.0 / (1.0 + math.exp(right - left)) else "right"
        request = urllib.request.Request(
            f"{url}/api/pairs/{pair['id']}/answer",
            data=json.dumps({"choice": choice, "client": "person"}).encode(),
            headers={"Content-Type": "application/json"},
        )
        urllib.request.urlopen(request, timeout=10).close()


def trial(arm: str, seed: int, total_steps: int, output: Path) -> list[dict[str, float]]:
    """One run of ``arm`` with ``seed``; its metrics rows."""
    budget = round(1000 * total_steps / 50_000)  # the shipped config's labels per step
    port = 8700 + 10 * seed + ARMS.index(arm)
    changes = dict(
        seed=seed,
        total_steps=total_steps,
        total_pairs=budget,
        initial_pairs=budget // 5,
        checkpoint_interval=total_steps,
        labeller=arm,
        label_port=port,
        frame_width=160,
        recorder_steps=5000,  # both arms cut fragments from the same newest episodes
        frame_steps=5000,
    )
    config = RLHFConfig.from_yaml(CONFIG).replace(**changes)
    run_dir = output / f"{arm}-seed{seed}"
    run_dir.mkdir(parents=True)
    write_config(run_dir, {"experiment": "rlhf", **config.resolved()})
    trainer = RLHFTrainer(config, run_dir)
    stop = threading.Event()
    answering = threading.Thread(
        target=person, args=(f"http://127.0.0.1:{port}", run_dir / LABELS_FILE, seed, stop), daemon=True
    )
    if arm == "web":
        answering.start()
    try:
        return trainer.run()
    finally:
        stop.set()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--total-steps", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--output", type=Path, default=Path("runs/web-labels"))
    args = parser.parse_args()
    start = time.perf_counter()
    jobs = [(arm, seed) for seed in range(args.seeds) for arm in ARMS]
    with ProcessPoolExecutor(args.workers) as pool:
        futures = {job: pool.submit(trial, *job, args.total_steps, args.output) for job in jobs}
        rows = {job: future.result() for job, future in futures.items()}
    wall = time.perf_counter() - start
    print(f"CartPole-v1 drlhf, {args.total_steps} agent steps, {args.seeds} seeds ({wall:.0f} s)")
    print("| labels | final eval return | last 5 evals | final per seed | pairs |")
    print("|---|---|---|---|---|")
    for arm in ARMS:
        finals = np.array([rows[arm, s][-1]["eval_return"] for s in range(args.seeds)])
        last5 = np.array([np.mean([r["eval_return"] for r in rows[arm, s][-5:]]) for s in range(args.seeds)])
        (fm, fs), (lm, ls) = mean_and_se(finals), mean_and_se(last5)
        per_seed = ", ".join(f"{s}: {f:.0f}" for s, f in enumerate(finals))
        pairs = int(rows[arm, 0][-1]["pairs"])
        print(f"| {arm} | {fm:.1f} +/- {fs:.1f} | {lm:.1f} +/- {ls:.1f} | {per_seed} | {pairs} |")


if __name__ == "__main__":
    main()
