"""Builds a Multi30k data root whose training targets include a model's translations (distillation).

    nmt-translate checkpoint=runs/deen/checkpoints/best.pt input=train.de output=train.hyp.en beam_size=5
    python scripts/distilled_corpus.py OUT_ROOT --corpus data/multi30k --translations train.hyp.en

then train with `data.root=OUT_ROOT`. The two ways distillation is used in BENCHMARKS.md:
- `--mode mix` (default; data diversification, and self-distillation when the translations are the
  model's own): the source side twice, the target side the references then the translations;
- `--mode replace` (sequence-level knowledge distillation): the translations instead of the references.
Several translation files (several teachers, or rounds) each add one more copy of the source side.

Every other file of the corpus (validation and test sets, other languages) is linked, not copied, so
the model is still chosen and scored on the real references. `train.hyp.en` must have a line for
every line of the corpus's training source, in order. The folder appears whole or not at all.
"""

import argparse
import gzip
import os
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing

from nmt.data.readers import iter_lines  # noqa: E402
from nmt.errors import NMTError  # noqa: E402

MODES = ("mix", "replace")


def training_pairs(corpus: Path, split: str, src: str, tgt: str, translations: list[Path], mode: str):
    """(source lines, target lines) of the new training split: the source once per target set."""
    source_file = corpus / f"{split}.{src}.gz"
    sources = list(iter_lines(source_file))
    target_sets = [] if mode == "replace" else [list(iter_lines(corpus / f"{split}.{tgt}.gz"))]
    for path in translations:
        hypotheses = list(iter_lines(path))
        if len(hypotheses) != len(sources):
            raise NMTError(f"{path} has {len(hypotheses):,} lines but {source_file} has {len(sources):,}: "
                           "translate the whole training source, one line per line")
        target_sets.append(hypotheses)
    return sources * len(target_sets), [line for lines in target_sets for line in lines]


def write_gz(path: Path, lines: list[str]) -> None:
    # mtime=0: the same inputs give the same bytes, so the data cache key does not change between builds.
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as f:
        f.write("".join(line + "\n" for line in lines).encode("utf-8"))


def build(out_root: Path, corpus: Path, translations: list[Path], *, split="train", src="de", tgt="en",
          mode="mix") -> Path:
    """Writes OUT_ROOT/multi30k and returns it; refuses an existing one."""
    if mode not in MODES:
        raise NMTError(f"--mode must be one of {', '.join(MODES)}; got {mode!r}")
    if not corpus.is_dir():
        raise NMTError(f"--corpus {corpus}: no such folder (it should hold {split}.{src}.gz and the other files)")
    final = out_root / "multi30k"
    if final.exists():
        raise NMTError(f"{final} already exists; give another OUT_ROOT or remove it")
    sources, targets = training_pairs(corpus, split, src, tgt, translations, mode)
    staging = out_root / ".multi30k.partial"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    written = {f"{split}.{src}.gz", f"{split}.{tgt}.gz"}
    write_gz(staging / f"{split}.{src}.gz", sources)
    write_gz(staging / f"{split}.{tgt}.gz", targets)
    for entry in sorted(corpus.iterdir()):
        if entry.name not in written and not entry.name.startswith("."):
            os.symlink(entry.resolve(), staging / entry.name)
    staging.rename(final)
    return final


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_root", type=Path, help="the new data root; train with data.root=OUT_ROOT")
    parser.add_argument("--corpus", type=Path, required=True, help="folder of {split}.{lang}.gz files")
    parser.add_argument("--translations", type=Path, nargs="+", required=True,
                        help="translations of the training source, one line per line; several files "
                             "(from several models) each add a copy of the source")
    parser.add_argument("--mode", default="mix", help="mix (references and translations) or replace")
    parser.add_argument("--src", default="de")
    parser.add_argument("--tgt", default="en")
    parser.add_argument("--split", default="train")
    args = parser.parse_args()
    try:
        final = build(args.out_root, args.corpus, args.translations, split=args.split, src=args.src,
                      tgt=args.tgt, mode=args.mode)
    except NMTError as e:
        raise SystemExit(f"error: {e}") from None
    print(f"wrote {final} ({args.mode}); train with data.root={args.out_root}")


if __name__ == "__main__":
    main()
