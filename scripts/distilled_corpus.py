"""Builds a Multi30k data root whose training pairs include models' translations (distillation).

    nmt-translate checkpoint=runs/deen/checkpoints/best.pt input=train.de output=train.hyp.en beam_size=5
    python scripts/distilled_corpus.py OUT_ROOT --corpus data/multi30k --translations train.hyp.en

then train with `data.root=OUT_ROOT`. The two ways distillation is used in BENCHMARKS.md:
- `--mode mix` (default; data diversification, and self-distillation when the translations are the
  model's own): the source side twice, the target side the references then the translations;
- `--mode replace` (sequence-level knowledge distillation): the translations instead of the references.
Several translation files (several teachers, or rounds) each add one more copy of the source side.

`--back-translations train.hyp.de` (the training targets translated into the source language by a model
of the other direction, e.g. `experiment=m30k_ende_best`) adds one pair per line, the translation as
source and the reference as target: data diversification's backward half, new source sentences for the
same targets. It can stand alone or go with `--translations`, in either mode.

Every other file of the corpus (validation and test sets, other languages) is linked, not copied, so
the model is still chosen and scored on the real references. `train.hyp.en` must have a line for
every line of the corpus's training source, in order. The folder appears whole or not at all.
"""

import gzip
import os
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing

from nmt.cli.common import run_script  # noqa: E402
from nmt.cli.stdout_errors import ArgumentParser  # noqa: E402
from nmt.data.readers import CONVERT_TO_UTF8, iter_lines  # noqa: E402
from nmt.errors import NMTError  # noqa: E402

MODES = ("mix", "replace")


def utf8_lines(path: Path) -> list[str]:
    # This script has no data.on_decode_error option: a file that is not UTF-8 has to be converted.
    return list(iter_lines(path, hint=CONVERT_TO_UTF8))


def parallel_lines(path: Path, side: Path, side_lines: list[str], what: str) -> list[str]:
    """PATH's lines, refused unless there is one per line of SIDE (the file they translate)."""
    lines = utf8_lines(path)
    if len(lines) != len(side_lines):
        raise NMTError(f"{path} has {len(lines):,} lines but {side} has {len(side_lines):,}: "
                       f"translate the whole {what}, one line per line")
    return lines


def training_pairs(corpus: Path, split: str, src: str, tgt: str, translations: list[Path], mode: str,
                   back_translations: list[Path] = ()):
    """(source lines, target lines) of the new training split: the source once per target set, then
    each back-translation with the references."""
    source_file, target_file = corpus / f"{split}.{src}.gz", corpus / f"{split}.{tgt}.gz"
    sources = utf8_lines(source_file)
    # replace mode without back-translations never reads the references, so it needs no target file
    references = utf8_lines(target_file) if mode == "mix" or back_translations else []
    target_sets = [] if mode == "replace" else [references]
    for path in translations:
        target_sets.append(parallel_lines(path, source_file, sources, "training source"))
    pair_sources = sources * len(target_sets)
    pair_targets = [line for lines in target_sets for line in lines]
    for path in back_translations:
        pair_sources += parallel_lines(path, target_file, references, "training target")
        pair_targets += references
    return pair_sources, pair_targets


def write_gz(path: Path, lines: list[str]) -> None:
    # mtime=0: the same inputs give the same bytes, so the data cache key does not change between builds.
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as f:
        f.write("".join(line + "\n" for line in lines).encode("utf-8"))


def build(out_root: Path, corpus: Path, translations: list[Path], *, split="train", src="de", tgt="en",
          mode="mix", back_translations: list[Path] = ()) -> Path:
    """Writes OUT_ROOT/multi30k and returns it; refuses an existing one."""
    if mode not in MODES:
        raise NMTError(f"--mode must be one of {', '.join(MODES)}; got {mode!r}")
    if not translations and not back_translations:
        raise NMTError("give --translations, --back-translations or both")
    if not corpus.is_dir():
        raise NMTError(f"--corpus {corpus}: no such folder (it should hold {split}.{src}.gz and the other files)")
    if out_root.exists() and not out_root.is_dir():
        raise NMTError(f"OUT_ROOT {out_root} is a file, not a folder; give a folder (it is created if missing)")
    final = out_root / "multi30k"
    if final.exists():
        raise NMTError(f"{final} already exists; give another OUT_ROOT or remove it")
    sources, targets = training_pairs(corpus, split, src, tgt, translations, mode, back_translations)
    staging = out_root / ".multi30k.partial"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        staging.mkdir(parents=True)
    except OSError as exc:
        raise NMTError(f"cannot create {staging}: {exc.strerror}") from None
    written = {f"{split}.{src}.gz", f"{split}.{tgt}.gz"}
    write_gz(staging / f"{split}.{src}.gz", sources)
    write_gz(staging / f"{split}.{tgt}.gz", targets)
    for entry in sorted(corpus.iterdir()):
        if entry.name not in written and not entry.name.startswith("."):
            os.symlink(entry.resolve(), staging / entry.name)
    staging.rename(final)
    return final


def main() -> None:
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_root", type=Path, help="the new data root; train with data.root=OUT_ROOT")
    parser.add_argument("--corpus", type=Path, required=True, help="folder of {split}.{lang}.gz files")
    parser.add_argument("--translations", type=Path, nargs="+", default=[],
                        help="translations of the training source, one line per line; several files "
                             "(from several models) each add a copy of the source")
    parser.add_argument("--back-translations", type=Path, nargs="+", default=[],
                        help="translations of the training target into the source language, one line per "
                             "line; each file adds its lines as sources of a copy of the references")
    parser.add_argument("--mode", default="mix", help="mix (references and translations) or replace")
    parser.add_argument("--src", default="de")
    parser.add_argument("--tgt", default="en")
    parser.add_argument("--split", default="train")
    args = parser.parse_args()
    final = build(args.out_root, args.corpus, args.translations, split=args.split, src=args.src,
                  tgt=args.tgt, mode=args.mode, back_translations=args.back_translations)
    print(f"wrote {final} ({args.mode}); train with data.root={args.out_root}")


if __name__ == "__main__":
    run_script(main)  # a mistake (a missing file, a short translation file): one error line, exit status 2
