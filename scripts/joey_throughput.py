"""The peer's training throughput, measured on this machine: Joey NMT 2.3 training the same model as
``experiment=m30k_deen_ref`` on the same data with the same SentencePiece model, as one JSON line.

Issue #3 sets our targets as multiples of Joey NMT's figures; those were measured on other machines.
This runs Joey itself beside ``scripts/benchmark.py``, so the two figures come from one machine.

    python -m venv .joey && .joey/bin/pip install torch==2.13.0 joeynmt==2.3.0 sentencepiece==0.2.0 importlib_metadata
    python scripts/joey_throughput.py --joey-python .joey/bin/python --spm runs/ref/spm.model --updates 60

Joey NMT needs sentencepiece below 0.2.1 (it calls ``SetVocabulary``) and ``importlib_metadata``,
which its wheel does not declare. The model is Joey's recurrent encoder-decoder with the reference's
sizes: bidirectional GRU 512, GRU decoder 512 with additive ("bahdanau") attention after its RNN step
and input feeding, embeddings 256 shared between source and target (12,577,280 parameters, as ours),
dropout 0.3, Adam 5e-4, label smoothing 0.1, batches of 4096 padded tokens (Joey counts them as we
do: sentences x (longest side + 1); it does not group sentences by length). No validation runs in the
measured updates, so the rate stays at 5e-4 (an exponential schedule of factor 1: Joey 2.3's plateau
schedule passes an argument torch >= 2.7 no longer takes). Joey logs target tokens per second every 10 updates; the figure is the
median of those intervals after the first (which holds its start-up).
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import sentencepiece
import torch
import yaml
from benchmark import device_name  # scripts/benchmark.py, beside this file

from nmt.cli.common import positive_int, run_script
from nmt.data.readers import iter_lines
from nmt.errors import ConfigError

LOG_EVERY = 10
# Joey's training log line, e.g. "Epoch   1, Step:       10, Batch Loss: ..., Tokens per Sec:      458, Lr: ..."
LOG_LINE = re.compile(r"Step:\s+(\d+),.*Tokens per Sec:\s+(\d+)")
PARAMS_LINE = re.compile(r"Total params: (\d+)")


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--joey-python", required=True, help="a Python with joeynmt 2.3 installed (see above)")
    p.add_argument("--spm", required=True, help="the SentencePiece model of a run of the experiment (its spm.model)")
    p.add_argument("--data-root", default=None,
                   help="folder holding multi30k/ (default: NMT_DATA_DIR, else data/)")
    p.add_argument("--src-lang", default="de")
    p.add_argument("--tgt-lang", default="en")
    p.add_argument("--updates", type=positive_int, default=60, help="training updates (at least 30)")
    p.add_argument("--batch-tokens", type=positive_int, default=4096, help="Joey's batch_size in tokens")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--work-dir", default=None, help="where the plain-text corpus, config and Joey's run go "
                                                     "(default: a temporary folder)")
    args = p.parse_args(argv)
    if args.updates < 3 * LOG_EVERY:
        p.error(f"--updates must be at least {3 * LOG_EVERY}: Joey logs its speed every {LOG_EVERY} updates "
                f"and the first interval holds its start-up; got {args.updates}")
    return args


def corpus_file(folder: Path, split: str, lang: str) -> Path:
    """`split`.`lang` in `folder`, plain or gzipped; ConfigError naming what is missing."""
    for name in (f"{split}.{lang}", f"{split}.{lang}.gz"):
        if (folder / name).is_file():
            return folder / name
    raise ConfigError(f"{folder / f'{split}.{lang}'} (or .gz) does not exist: --data-root must hold multi30k/")


def write_plain_corpus(source: Path, target: Path, splits: list[str], langs: list[str]) -> None:
    """Joey reads plain `split`.`lang` files: the corpus's, unzipped into `target`."""
    target.mkdir(parents=True, exist_ok=True)
    for split in splits:
        for lang in langs:
            lines = iter_lines(corpus_file(source, split, lang))
            (target / f"{split}.{lang}").write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")


def write_joey_vocab(spm_model: Path, path: Path) -> int:
    """The SentencePiece model's pieces as Joey's vocabulary file, one per line, without the
    control and unknown pieces: Joey puts its own <unk> <pad> <s> </s> first, so the vocabulary
    has the same size as ours. Returns the number of pieces written."""
    processor = sentencepiece.SentencePieceProcessor(model_file=str(spm_model))
    pieces = [processor.id_to_piece(i) for i in range(processor.get_piece_size())
              if not (processor.is_control(i) or processor.is_unknown(i))]
    path.write_text("".join(f"{piece}\n" for piece in pieces), encoding="utf-8")
    return len(pieces)


def joey_config(work: Path, corpus: Path, spm_model: Path, vocab: Path, src: str, tgt: str,
                batch_tokens: int, updates: int, device: str) -> dict:
    """Joey NMT 2.3's config for the reference model (see the module's docstring)."""

    def side(lang: str) -> dict:
        return {"lang": lang, "level": "bpe", "lowercase": False, "max_length": 100, "voc_file": str(vocab),
                "tokenizer_type": "sentencepiece", "tokenizer_cfg": {"model_file": str(spm_model)}}

    def rnn(**extra) -> dict:
        return {"type": "recurrent", "rnn_type": "gru", "hidden_size": 512, "num_layers": 1, "dropout": 0.3,
                "embeddings": {"embedding_dim": 256, "scale": False, "dropout": 0.3}, **extra}

    return {
        "name": "m30k_deen_ref_joey", "joeynmt_version": "2.3.0", "model_dir": str(work / "model"),
        "use_cuda": device == "cuda", "fp16": False, "random_seed": 42,
        "data": {"train": str(corpus / "train"), "dev": str(corpus / "val"), "test": str(corpus / "val"),
                 "dataset_type": "plain", "src": side(src), "trg": side(tgt)},
        "training": {"optimizer": "adam", "learning_rate": 0.0005, "batch_size": batch_tokens,
                     "batch_type": "token", "label_smoothing": 0.1, "epochs": 1000, "updates": updates,
                     "validation_freq": 10 * updates, "logging_freq": LOG_EVERY, "shuffle": True,
                     "overwrite": True, "early_stopping_metric": "bleu",
                     # Joey needs a schedule; this one keeps the rate (its plateau schedule passes
                     # verbose=, which torch >= 2.7 refuses, and no validation runs here anyway)
                     "scheduling": "exponential", "decrease_factor": 1.0, "learning_rate_min": 1.0e-8},
        "model": {"initializer": "xavier_uniform", "embed_initializer": "normal", "tied_embeddings": True,
                  "encoder": rnn(bidirectional=True),
                  "decoder": rnn(hidden_dropout=0.3, input_feeding=True, init_hidden="bridge",
                                 attention="bahdanau")},
        "testing": {"beam_size": 5, "beam_alpha": 1.0, "batch_size": 64, "batch_type": "sentence"},  # Joey needs one
    }


def parse_joey_log(text: str) -> tuple[int | None, list[tuple[int, int]]]:
    """Joey's parameter count and its (update, target tokens/s) log points."""
    params = PARAMS_LINE.search(text)
    points = [(int(step), int(rate)) for step, rate in LOG_LINE.findall(text)]
    return (int(params.group(1)) if params else None), points


def measured_rate(points: list[tuple[int, int]]) -> float:
    """The median tokens/s of the intervals after the first (the first holds Joey's start-up)."""
    steady = [rate for _, rate in points[1:]]
    if not steady:
        raise ConfigError("Joey logged fewer than two speed intervals: raise --updates")
    return statistics.median(steady)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    spm_model = Path(args.spm).resolve()
    if not spm_model.is_file():
        raise ConfigError(f"--spm {args.spm} does not exist: give the spm.model of a run of the experiment")
    data_root = Path(args.data_root or os.environ.get("NMT_DATA_DIR") or "data")
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(args.work_dir or scratch).resolve()
        corpus = work / "corpus"
        write_plain_corpus(data_root / "multi30k", corpus, ["train", "val"], [args.src_lang, args.tgt_lang])
        write_joey_vocab(spm_model, work / "vocab.txt")
        config = joey_config(work, corpus, spm_model, work / "vocab.txt", args.src_lang, args.tgt_lang,
                             args.batch_tokens, args.updates, args.device)
        (work / "joey.yaml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        run = subprocess.run([args.joey_python, "-m", "joeynmt", "train", str(work / "joey.yaml"), "--skip-test"],
                             capture_output=True, text=True)
        (work / "joey.log").write_text(run.stdout + run.stderr, encoding="utf-8")
        if run.returncode != 0:
            last = (run.stderr.strip().splitlines() or ["no output"])[-1]
            raise ConfigError(f"Joey NMT failed (exit status {run.returncode}): {last}; its log: {work / 'joey.log'}")
        params, points = parse_joey_log(run.stdout + run.stderr)
        print(json.dumps({
            "peer": "joeynmt 2.3.0", "device": device_name(torch.device(args.device)), "updates": args.updates,
            "batch_tokens": args.batch_tokens, "parameters": params,
            "train_tgt_tokens_per_s": measured_rate(points), "intervals": points,
            "load_avg_1m_end": round(os.getloadavg()[0], 2),
        }))


if __name__ == "__main__":
    run_script(main)
