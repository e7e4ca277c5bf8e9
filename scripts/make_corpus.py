"""Writes a synthetic parallel corpus of N pairs, for scaling tests and benchmarks.

    python scripts/make_corpus.py OUT_DIR --pairs 1000000 [--valid 1000] [--seed 0]

OUT_DIR gets train.de/train.en and val.de/val.en, one sentence a line, usable as
`data=files data.files.train=OUT_DIR/train.{lang} data.files.val=OUT_DIR/val.{lang}`. Sentences are
3-30 made-up words; the target is a word-by-word mapping of the source with a local reordering, so a
model can learn it. Lines are written as they are generated (constant memory at any N).
"""

import argparse
import itertools
from pathlib import Path

import numpy as np

SYLLABLES = ["ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "be", "da", "fu", "go", "he", "ji", "pe", "zu"]


def vocabulary(rng: np.random.Generator, size: int) -> list[str]:
    """`size` distinct made-up words of 1-4 syllables, in random order."""
    words = ["".join(parts) for n in range(1, 5) for parts in itertools.product(SYLLABLES, repeat=n)]
    if size > len(words):
        raise SystemExit(f"--vocab must be at most {len(words)}")
    return [words[i] for i in rng.permutation(len(words))[:size]]


def write_split(out: Path, name: str, pairs: int, rng, src_words, tgt_words, chunk: int = 10_000) -> None:
    with open(out / f"{name}.de", "w") as de, open(out / f"{name}.en", "w") as en:
        for start in range(0, pairs, chunk):
            n = min(chunk, pairs - start)
            lengths = rng.integers(3, 31, size=n)
            ids = rng.zipf(1.3, size=int(lengths.sum())) % len(src_words)  # a Zipf-like word frequency
            src_lines, tgt_lines, at = [], [], 0
            for length in lengths.tolist():
                sentence = ids[at:at + length].tolist()
                at += length
                src_lines.append(" ".join(src_words[i] for i in sentence))
                swapped = sentence[1::2] + sentence[::2] if length % 5 == 0 else sentence  # some reordering
                tgt_lines.append(" ".join(tgt_words[i] for i in swapped))
            de.write("\n".join(src_lines) + "\n")
            en.write("\n".join(tgt_lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--pairs", type=int, required=True)
    parser.add_argument("--valid", type=int, default=1000)
    parser.add_argument("--vocab", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    src_words, tgt_words = vocabulary(rng, args.vocab), vocabulary(rng, args.vocab)
    rng.shuffle(tgt_words)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    write_split(args.out_dir, "train", args.pairs, rng, src_words, tgt_words)
    write_split(args.out_dir, "val", args.valid, rng, src_words, tgt_words)
    print(f"wrote {args.pairs:,} training and {args.valid:,} validation pairs to {args.out_dir}")


if __name__ == "__main__":
    main()
