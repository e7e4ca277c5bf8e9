"""Data-scaling benchmark (not a test): preparation speed, time to first step and peak memory.

    python scripts/bench_data.py --pairs 1000000 --steps 200 [--workers N] [--work DIR]

Generates a synthetic corpus with scripts/make_corpus.py (unless DIR already holds one of that
size), then in one fresh process: prepares the data (SentencePiece on tokenizer.sample_size
sentences, tokenization in `--workers` processes, the cache written), and trains the smoke model for
`--steps` updates from the memory-mapped cache. The vocabulary (8,000) and length limit (100
subwords) are the reference experiment's, not the smoke experiment's, so that nearly every pair is
kept. Prints one JSON line: pairs/s of preparation, seconds to the first update, steps/s, the peak
RSS of the process, and the peak of the process and its tokenization workers together (sampled
from /proc every 0.2 s).
`--multi30k ROOT` runs the same on Multi30k instead of a generated corpus.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def overrides(args, corpus: Path, cache: Path) -> list[str]:
    data = ([f"data.root={args.multi30k}"] if args.multi30k else
            ["data=files", f"data.files.train='{corpus}/train.{{lang}}'", f"data.files.val='{corpus}/val.{{lang}}'",
             f"data.root={corpus}"])
    return ["experiment=smoke", *data, f"data.cache_dir={cache}", f"data.num_workers={args.workers}",
            "data.max_train_examples=null", "data.max_len=100", "tokenizer.vocab_size=8000",
            "tokenizer.sample_size=200000", f"trainer.max_steps={args.steps}", f"trainer.valid_every={args.steps}",
            "trainer.valid_max_sentences=100", "trainer.plot_sentences=0", "trainer.progress=false"]


def rss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            return next((int(line.split()[1]) for line in f if line.startswith("VmRSS:")), 0)
    except OSError:  # the process has just ended
        return 0


def descendants(pid: int) -> list[int]:
    try:
        children = [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []
    return children + [d for c in children for d in descendants(c)]


class TotalRss:
    """Peak of this process's RSS plus its descendants' (the tokenization workers), sampled.
    ru_maxrss cannot give this: a spawned worker inherits the parent's maximum through fork."""

    def __init__(self, interval: float = 0.2):
        self.peak_kib, self._stop = 0, threading.Event()
        self._thread = threading.Thread(target=self._run, args=(interval,), daemon=True)
        self._thread.start()

    def _run(self, interval: float) -> None:
        me = os.getpid()
        while not self._stop.wait(interval):
            self.peak_kib = max(self.peak_kib, sum(rss_kib(p) for p in [me, *descendants(me)]))

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak_kib


def measure(args, corpus: Path, work: Path, run_dir: Path) -> dict:
    from hydra import compose, initialize_config_dir

    import nmt.training.trainer as trainer
    from nmt.cli.common import config_dir
    from nmt.data.pipeline import cache_key, prepare_data

    with initialize_config_dir(config_dir=config_dir(), version_base=None):
        cfg = compose("train", overrides=overrides(args, corpus, work / f"cache_{corpus.name}"))
    total_rss = TotalRss()
    from_cache = (Path(cfg.data.cache_dir) / f"prepared-{cache_key(cfg)}.npz").is_file()
    start = time.perf_counter()
    data = prepare_data(cfg)
    prepare_s = time.perf_counter() - start
    pairs_read, pairs_kept = data.stats["train"].read, data.stats["train"].kept
    del data
    first_step, real_step = [], trainer.train_step

    def timed_step(*a):
        out = real_step(*a)
        if not first_step:
            first_step.append(time.perf_counter())
        return out

    trainer.train_step = timed_step
    start = time.perf_counter()
    trainer.train(cfg, run_dir)  # reads the cache written above, memory-mapped
    end = time.perf_counter()
    kib = 1024
    return {"pairs": pairs_read, "pairs_kept": pairs_kept, "from_cache": from_cache, "prepare_s": round(prepare_s, 1), "prepare_pairs_per_s": round(pairs_read / prepare_s),
            "first_step_s": round(first_step[0] - start, 2), "steps": args.steps,
            "steps_per_s": round((args.steps - 1) / (end - first_step[0]), 2),
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / kib),
            "peak_rss_total_mib": round(total_rss.stop() / kib)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=1_000_000)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--work", type=Path, default=None, help="folder for the corpus, cache and run")
    parser.add_argument("--multi30k", type=Path, default=None, help="folder holding multi30k/ (instead)")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="bench_data_"))
    corpus = work / f"corpus_{args.pairs}"
    if not args.multi30k and not (corpus / "train.en").is_file():
        subprocess.run([sys.executable, str(HERE / "make_corpus.py"), str(corpus), "--pairs", str(args.pairs)],
                       check=True)
    # The cache is kept in the work folder: a second run measures training from the memory-mapped cache.
    print(json.dumps(measure(args, corpus, work, Path(tempfile.mkdtemp(dir=work)))))


if __name__ == "__main__":
    main()
