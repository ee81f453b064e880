"""Bench: how fast Ctrl-C stops training, and what the stop checks cost the model pass.

(a) Overhead: the forward to `blocks.6.hook_resid_post` that training and dashboards run,
    with the per-block stop checks (`HookedModel.forward_to_hook`) vs without them (the
    bare `run_hooks`), alternating round by round, best of each. Goal: ≤ 1.03×.
(b) Latency: `interpedia train` at the demo's sizes (TopK, d_sae 4608, k 32, batch 4096)
    as a subprocess, stopped by a real signal at three moments: while the shuffle buffer
    fills (model forwards), right after a step starts, and later in a step; the time from
    the signal to the exit, next to the training rate its bar showed. Goal: ≤ 2 s each,
    on a quiet machine (the contract: finish or abandon the current step, save, exit).

    .venv/bin/python bench/stop/run.py [--rounds 5] [--trials 3]
"""

import argparse
import os
import re
import signal
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the packaged model is local; never ask the hub

import torch

from interpedia_testing.commands import RunningCommand
from interpedia_trainer.corpus import tokenize_corpus
from interpedia_trainer.model_runtime import load_hooked_model

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / ".cache" / "corpora" / "sotu"
HOOK = "blocks.6.hook_resid_post"
INTERPEDIA = str(Path(sys.executable).parent / "interpedia")
STEP = r"training:\s+\d+%\|[^|]*\|\s*[1-9][\d.]*k?/"  # the bar once a step has trained tokens


def overhead(rounds: int) -> None:
    model = load_hooked_model()
    tokens = tokenize_corpus(CORPUS, model.tokenizer, context_size=128, max_contexts=8)
    checked, bare = [], []
    with torch.no_grad():
        model.forward_to_hook(tokens, HOOK)  # warm-up
        for _ in range(rounds):
            t = time.perf_counter()
            model.loaded.run_hooks(tokens, [HOOK])
            bare.append(time.perf_counter() - t)
            t = time.perf_counter()
            model.forward_to_hook(tokens, HOOK)
            checked.append(time.perf_counter() - t)
    print(f"(a) forward of 8 x 128 tokens to {HOOK}, best of {rounds}:")
    print(f"  bare run_hooks                {min(bare) * 1000:7.1f} ms")
    print(f"  with per-block stop checks    {min(checked) * 1000:7.1f} ms")
    print(f"  ratio                         {min(checked) / min(bare):7.3f}x  (goal <= 1.03x)")


def latency(trials: int) -> None:
    moments = [("buffer filling", r"training\n", 2.0), ("step just started", STEP, 0.05)]
    moments += [("mid-step", STEP, 0.4)] * max(0, trials - 2)
    print("(b) interpedia train (TopK d_sae 4608, k 32, batch 4096), signal to exit:")
    for n, (moment, after, delay) in enumerate(moments[:trials]):
        signum = signal.SIGINT if n % 2 == 0 else signal.SIGTERM
        with tempfile.TemporaryDirectory() as out:
            command = [INTERPEDIA, "train", "--out", out, "--hook", HOOK, "--d-sae", "4608"]
            command += ["--k", "32", "--batch-size", "4096", "--total-tokens", "4096000"]
            command += ["--max-contexts", "2000", "--corpus", str(CORPUS)]
            running = RunningCommand(command, os.environ)
            try:
                running.wait_for_output(after, timeout=900)
                time.sleep(delay)
                code, seconds = running.stop(signum)
            finally:
                running.kill()
            rate = re.findall(r"([\d.]+)tok/s", running.output)
            # The bar's rate averages over the whole run, buffer filling included: under
            # load it says little of one step's time (bench/train measures that).
            step = f"bar {float(rate[-1]):.0f} tok/s" if rate else "no step yet"
            saved = (Path(out) / "checkpoints" / "latest" / "trainer_state.pt").exists()
            print(
                f"  {moment:18s} {signal.Signals(signum).name:7s} exit {code} after "
                f"{seconds:5.2f} s  ({step}; checkpoint {'saved' if saved else 'MISSING'})"
            )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--trials", type=int, default=3)
    args = parser.parse_args()
    torch.set_flush_denormal(True)
    print(
        f"device cpu, {torch.get_num_threads()} threads, fp32; "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    )
    overhead(args.rounds)
    latency(args.trials)


if __name__ == "__main__":
    main()
