"""The peer measured on this machine: Joey NMT 2.3 training our reference model, and decoding our
trained checkpoint, each as one JSON line.

Issue #3 sets our targets as multiples of Joey NMT's figures, measured on other machines. This runs
Joey itself, so that its figures and those of ``scripts/benchmark.py`` come from one machine:

    python -m venv .joey && .joey/bin/pip install torch==2.13.0 joeynmt==2.3.0 sentencepiece==0.2.0 importlib_metadata
    python scripts/joey_peer.py --joey-python .joey/bin/python train --checkpoint runs/ref/checkpoints/best.pt
    python scripts/joey_peer.py --joey-python .joey/bin/python decode --checkpoint runs/ref/checkpoints/best.pt

Joey NMT needs sentencepiece below 0.2.1 (it calls ``SetVocabulary``) and ``importlib_metadata``,
which its wheel does not declare. The model is the same network as ``experiment=m30k_deen_ref``
(scripts/joey_format.py), with the checkpoint's SentencePiece model as vocabulary.

``train`` trains it from scratch for ``--updates`` updates (no validation) on the corpus's training
set, in batches of 4096 padded tokens, which Joey counts as we do (sentences x (longest side + 1)),
but fills in random order where ours group sentences of similar length. Joey logs target tokens per
second every 10 updates; the figure is the median of the intervals after the first (which holds
its start-up).

``decode`` hands the checkpoint's weights to Joey, which translates ``--split`` greedily and with
beam 5 (length penalty 1.0, as ours) in batches of 64 sentences, and reports the sentences per
second of its generation, its BLEU, and how many of its translations are ours to the letter (ours
with the same beam and length penalty): the peer's code computing the same translations from the
same weights checks both models and both searches.
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

import torch
import yaml
from benchmark import device_name  # scripts/benchmark.py, beside this file
from joey_format import check_reference_model, joey_config, joey_state_dict, write_joey_vocab

from nmt.cli.common import positive_int, run_script
from nmt.cli.stdout_errors import ArgumentParser
from nmt.data.corpus import load_split
from nmt.data.readers import iter_lines
from nmt.errors import ConfigError, NMTError
from nmt.inference.translator import Translator
from nmt.training.checkpoint import load_checkpoint

LOG_EVERY = 10
# Joey's training log line, e.g. "Epoch   1, Step:       10, Batch Loss: ..., Tokens per Sec:      458, Lr: ..."
SPEED_LINE = re.compile(r"Step:\s+(\d+),.*Tokens per Sec:\s+(\d+)")
PARAMS_LINE = re.compile(r"Total params: (\d+)")
GENERATION_LINE = re.compile(r"Generation took ([\d.]+)\[sec\]")
BLEU_LINE = re.compile(r"Evaluation result \([^)]*\): bleu:\s+([\d.]+)")


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = ArgumentParser(description=__doc__.split("\n\n")[0],
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--joey-python", required=True, help="a Python with joeynmt 2.3 installed (see above)")
    p.add_argument("--data-root", default=None,
                   help="folder holding multi30k/ (default: NMT_DATA_DIR, else the checkpoint's data.root)")
    p.add_argument("--work-dir", default=None,
                   help="where the plain-text corpus, config and Joey's run go (default: a temporary folder)")
    modes = p.add_subparsers(dest="mode", required=True)
    train = modes.add_parser("train", help="Joey's training throughput on the reference model")
    train.add_argument("--checkpoint", required=True, help="a checkpoint of the experiment: its SentencePiece "
                                                           "model and languages are used")
    train.add_argument("--updates", type=positive_int, default=60, help="training updates (at least 30)")
    train.add_argument("--batch-tokens", type=positive_int, default=4096,
                       help="Joey's batch_size in padded tokens (the reference's: 4096)")
    decode = modes.add_parser("decode", help="Joey decoding the checkpoint: speed, BLEU, agreement with ours")
    decode.add_argument("--checkpoint", required=True, help="a trained checkpoint of experiment=m30k_deen_ref")
    decode.add_argument("--split", default="test_2016_flickr")
    args = p.parse_args(argv)
    if args.mode == "train" and args.updates < 3 * LOG_EVERY:
        p.error(f"--updates must be at least {3 * LOG_EVERY}: Joey logs its speed every {LOG_EVERY} updates "
                f"and the first interval holds its start-up; got {args.updates}")
    return args


def write_plain_corpus(data_cfg: Mapping, target: Path, splits: list[str]) -> dict[str, list[str]]:
    """Joey reads plain `split`.`lang` files: each split of the run's corpus, read as training reads
    it (nmt.data.corpus.load_split, which fetches Multi30k files that are missing), written into
    `target`. Returns each split's source sentences."""
    target.mkdir(parents=True, exist_ok=True)
    sources = {}
    for split in splits:
        pair = load_split(data_cfg, split)
        for lang, lines in zip((data_cfg["src_lang"], data_cfg["tgt_lang"]), pair, strict=True):
            (target / f"{split}.{lang}").write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
        sources[split] = pair[0]
    return sources


def run_corpus(data_cfg: Mapping, root: str | None) -> dict:
    """A checkpoint's corpus settings, read from `root` (--data-root, else NMT_DATA_DIR) where one is
    given: the stored data.root is the training machine's."""
    root = root or os.environ.get("NMT_DATA_DIR")
    return {**data_cfg, "root": root} if root else dict(data_cfg)


def parse_training_log(text: str) -> tuple[int | None, list[tuple[int, int]]]:
    """Joey's parameter count and its (update, target tokens/s) log points."""
    params = PARAMS_LINE.search(text)
    points = [(int(step), int(rate)) for step, rate in SPEED_LINE.findall(text)]
    return (int(params.group(1)) if params else None), points


def measured_rate(points: list[tuple[int, int]]) -> float:
    """The median tokens/s of the intervals after the first (the first holds Joey's start-up)."""
    steady = [rate for _, rate in points[1:]]
    if not steady:
        raise ConfigError("Joey logged fewer than two speed intervals: raise --updates")
    return statistics.median(steady)


def parse_test_log(text: str) -> tuple[float, float]:
    """Seconds of Joey's generation and its BLEU, from `joeynmt test` on one data set."""
    seconds, bleu = GENERATION_LINE.search(text), BLEU_LINE.search(text)
    if seconds is None or bleu is None:
        raise ConfigError("Joey's test log has no generation time or BLEU line")
    return float(seconds.group(1)), float(bleu.group(1))


def joey_version(joey_python: str) -> str:
    """The joeynmt version `joey_python` imports; ConfigError when it cannot run or has none."""
    try:
        run = subprocess.run([joey_python, "-c", "import joeynmt; print(joeynmt.__version__)"],
                             capture_output=True, text=True)
    except OSError as exc:
        raise ConfigError(f"--joey-python {joey_python} cannot be run: {exc.strerror}") from None
    if run.returncode != 0:
        raise ConfigError(f"--joey-python {joey_python} cannot import joeynmt: install it as "
                          f"scripts/joey_peer.py's help says")
    return run.stdout.strip()


def run_joey(args: argparse.Namespace, command: str, config: dict, work: Path, name: str, *flags: str) -> str:
    """Runs `joeynmt COMMAND` on `config` (written to WORK/NAME.yaml) and returns its log."""
    config_path = work / f"{name}.yaml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    run = subprocess.run([args.joey_python, "-m", "joeynmt", command, str(config_path), *flags],
                         capture_output=True, text=True)
    log = run.stdout + run.stderr
    (work / f"{name}.log").write_text(log, encoding="utf-8")
    if run.returncode != 0:
        last = (run.stderr.strip().splitlines() or ["no output"])[-1]
        where = f"its log: {work / name}.log" if args.work_dir else "give --work-dir DIR to keep its log"
        raise NMTError(f"Joey NMT failed (exit status {run.returncode}): {last}; {where}")
    return log


def checkpoint_parts(path: str) -> tuple[dict, bytes]:
    """A checkpoint's config and SentencePiece model (joint: the reference shares one)."""
    checkpoint = load_checkpoint(path)
    config = checkpoint["config"]
    check_reference_model(config["model"], config["model"]["attention"]["name"])
    return checkpoint, checkpoint["tokenizers"]["src"]  # joint (tied embeddings need it): src's is tgt's


def prepare(work: Path, spm_model: bytes, config: dict) -> dict:
    """The SentencePiece model, Joey's vocabulary and its model config, written into `work`."""
    (work / "model").mkdir(exist_ok=True)  # Joey's model_dir: its test asserts it exists
    (work / "spm.model").write_bytes(spm_model)
    write_joey_vocab(spm_model, work / "vocab.txt")
    return joey_config(work / "model", work / "spm.model", work / "vocab.txt",
                       config["data"]["src_lang"], config["data"]["tgt_lang"])


def timed_training(config: dict, corpus: Path, updates: int, batch_tokens: int) -> dict:
    """`config` set to train `updates` updates on CORPUS/train in batches of `batch_tokens`, logging
    its speed every LOG_EVERY updates and validating never (Joey reads the dev set all the same)."""
    config["data"].update(train=str(corpus / "train"), dev=str(corpus / "val"))
    config["training"].update(epochs=1000, updates=updates, validation_freq=10 * updates, logging_freq=LOG_EVERY,
                              batch_size=batch_tokens)
    return config


def measure_training(args: argparse.Namespace, work: Path) -> dict:
    checkpoint, spm_model = checkpoint_parts(args.checkpoint)
    config = prepare(work, spm_model, checkpoint["config"])
    write_plain_corpus(run_corpus(checkpoint["config"]["data"], args.data_root), work / "corpus", ["train", "val"])
    config = timed_training(config, work / "corpus", args.updates, args.batch_tokens)
    params, points = parse_training_log(run_joey(args, "train", config, work, "train", "--skip-test"))
    return {"updates": args.updates, "batch_tokens": config["training"]["batch_size"], "parameters": params,
            "train_tgt_tokens_per_s": measured_rate(points), "intervals": points}


def measure_decoding(args: argparse.Namespace, work: Path) -> dict:
    checkpoint, spm_model = checkpoint_parts(args.checkpoint)
    config = prepare(work, spm_model, checkpoint["config"])
    data_cfg = run_corpus(checkpoint["config"]["data"], args.data_root)
    sources = write_plain_corpus(data_cfg, work / "corpus", [args.split])[args.split]
    torch.save({"model_state": joey_state_dict(checkpoint["model"])}, work / "ours.ckpt")
    config["data"]["test"] = str(work / "corpus" / args.split)
    report = {"split": args.split, "sentences": len(sources), "batch_sentences": 64}
    for name, beam in (("greedy", 1), ("beam5", 5)):
        config["testing"].update(beam_size=beam, load_model=str(work / "ours.ckpt"))
        seconds, bleu = parse_test_log(run_joey(args, "test", config, work, name,
                                                "--output-path", str(work / name)))
        report[f"decode_{name}_sents_per_s"] = round(report["sentences"] / seconds, 1)
        report[f"bleu_{name}"] = bleu
    translator = Translator.load(args.checkpoint)
    for name, beam in (("greedy", 1), ("beam5", 5)):
        ours = [hyps[0].text for hyps in translator.translate(sources, beam_size=beam, length_penalty=1.0)]
        joeys = list(iter_lines(work / f"{name}.test"))
        report[f"same_{name}_translations"] = sum(a == b for a, b in zip(ours, joeys, strict=True))
    return report


def main(argv: list[str] | None = None) -> None:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if not Path(args.checkpoint).is_file():
        raise ConfigError(f"--checkpoint {args.checkpoint} does not exist")
    version = joey_version(args.joey_python)
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(args.work_dir or scratch).resolve()
        work.mkdir(parents=True, exist_ok=True)
        measure = measure_training if args.mode == "train" else measure_decoding
        figures = measure(args, work)
    print(json.dumps({"peer": f"joeynmt {version}", "mode": args.mode, "device": device_name(torch.device("cpu")),
                      "checkpoint": args.checkpoint, **figures, "load_avg_1m_end": round(os.getloadavg()[0], 2)}))


if __name__ == "__main__":
    run_script(main)
