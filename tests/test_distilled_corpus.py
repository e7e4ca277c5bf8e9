"""scripts/distilled_corpus.py: the data root the distillation runs of BENCHMARKS.md train on."""

import gzip
import subprocess
import sys
import time
from pathlib import Path

import pytest
from project_scripts import load_script

from nmt.data.multi30k import multi30k_file
from nmt.data.readers import read_lines

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "distilled_corpus.py"


def run(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True)


def tiny_corpus(folder: Path, pairs: int = 3) -> Path:
    folder.mkdir(parents=True)
    for split, n in (("train", pairs), ("val", 2)):
        for lang in ("de", "en"):
            with gzip.open(folder / f"{split}.{lang}.gz", "wt", encoding="utf-8") as f:
                f.write("".join(f"{split} {lang} {i}\n" for i in range(n)))
    return folder


def test_mix_puts_the_translations_after_the_references_of_the_real_corpus(multi30k_root, tmp_path):
    corpus = multi30k_root / "multi30k"
    references = read_lines(corpus / "train.en.gz")
    hypotheses = tmp_path / "train.hyp.en"
    hypotheses.write_text("".join(line.lower() + "\n" for line in references), encoding="utf-8")

    done = run(tmp_path / "root", "--corpus", corpus, "--translations", hypotheses)

    assert done.returncode == 0, done.stderr
    root = tmp_path / "root"
    sources = read_lines(corpus / "train.de.gz")
    assert read_lines(multi30k_file(root, "train", "de")) == sources + sources
    assert read_lines(multi30k_file(root, "train", "en")) == references + [r.lower() for r in references]
    # Validation and test sets stay the real ones, linked rather than copied.
    for split in ("val", "test_2016_flickr"):
        linked = multi30k_file(root, split, "en")
        assert linked.is_symlink() and linked.resolve() == (corpus / f"{split}.en.gz").resolve()


def test_the_same_inputs_build_the_same_bytes_at_any_time(tmp_path, monkeypatch):
    """The written training files do not depend on when they were built (gzip stores a time), so a
    rebuilt root keeps its prepared-data cache key."""
    script = load_script("distilled_corpus")
    corpus = tiny_corpus(tmp_path / "corpus")
    hypotheses = tmp_path / "hyp.en"
    hypotheses.write_text("a\nb\nc\n", encoding="utf-8")
    built = []
    for clock in (1_000_000_000.0, 1_700_000_000.0):
        monkeypatch.setattr(time, "time", lambda clock=clock: clock)
        built.append(script.build(tmp_path / f"root{len(built)}", corpus, [hypotheses]))
    for name in ("train.de.gz", "train.en.gz"):
        assert (built[0] / name).read_bytes() == (built[1] / name).read_bytes()


def test_replace_trains_on_the_translations_alone(tmp_path):
    corpus = tiny_corpus(tmp_path / "corpus")
    hypotheses = tmp_path / "hyp.en"
    hypotheses.write_text("a\nb\nc\n", encoding="utf-8")

    done = run(tmp_path / "root", "--corpus", corpus, "--translations", hypotheses, "--mode", "replace")

    assert done.returncode == 0, done.stderr
    assert read_lines(multi30k_file(tmp_path / "root", "train", "de")) == ["train de 0", "train de 1", "train de 2"]
    assert read_lines(multi30k_file(tmp_path / "root", "train", "en")) == ["a", "b", "c"]
    assert read_lines(multi30k_file(tmp_path / "root", "val", "en")) == ["val en 0", "val en 1"]


@pytest.mark.parametrize("option, name, lines, counted, translated", [
    ("--translations", "hyp.en", "a\nb\n", "2 lines", "train.de.gz has 3"),       # the source's translations
    ("--back-translations", "hyp.de", "b0\n", "1 lines", "train.en.gz has 3"),     # the target's
])
def test_translations_of_another_length_are_one_line_naming_both_files_and_nothing_is_written(
        tmp_path, option, name, lines, counted, translated):
    corpus = tiny_corpus(tmp_path / "corpus")
    hypotheses = tmp_path / name
    hypotheses.write_text(lines, encoding="utf-8")

    done = run(tmp_path / "root", "--corpus", corpus, option, hypotheses)

    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert str(hypotheses) in done.stderr and counted in done.stderr
    assert translated in done.stderr
    assert not (tmp_path / "root" / "multi30k").exists()


def test_an_existing_root_is_refused_and_left_as_it_was(tmp_path):
    corpus = tiny_corpus(tmp_path / "corpus")
    hypotheses = tmp_path / "hyp.en"
    hypotheses.write_text("a\nb\nc\n", encoding="utf-8")
    assert run(tmp_path / "root", "--corpus", corpus, "--translations", hypotheses).returncode == 0
    hypotheses.write_text("x\ny\nz\n", encoding="utf-8")

    done = run(tmp_path / "root", "--corpus", corpus, "--translations", hypotheses)

    assert done.returncode == 2 and "already exists" in done.stderr
    assert read_lines(multi30k_file(tmp_path / "root", "train", "en"))[3:] == ["a", "b", "c"]


def test_an_unknown_mode_names_the_option(tmp_path):
    corpus = tiny_corpus(tmp_path / "corpus")
    done = run(tmp_path / "root", "--corpus", corpus, "--translations", corpus / "train.en.gz", "--mode", "both")
    assert done.returncode == 2 and "--mode" in done.stderr and "both" in done.stderr


def test_each_translation_file_adds_a_copy_of_the_source(tmp_path):
    corpus = tiny_corpus(tmp_path / "corpus", pairs=2)
    first, second = tmp_path / "a.en", tmp_path / "b.en"
    first.write_text("a0\na1\n", encoding="utf-8")
    second.write_text("b0\nb1\n", encoding="utf-8")

    mixed = run(tmp_path / "mix", "--corpus", corpus, "--translations", first, second)
    replaced = run(tmp_path / "replace", "--corpus", corpus, "--translations", first, second, "--mode", "replace")

    assert mixed.returncode == 0 and replaced.returncode == 0, mixed.stderr + replaced.stderr
    assert read_lines(multi30k_file(tmp_path / "mix", "train", "de")) == ["train de 0", "train de 1"] * 3
    assert read_lines(multi30k_file(tmp_path / "mix", "train", "en")) == [
        "train en 0", "train en 1", "a0", "a1", "b0", "b1"]
    assert read_lines(multi30k_file(tmp_path / "replace", "train", "de")) == ["train de 0", "train de 1"] * 2
    assert read_lines(multi30k_file(tmp_path / "replace", "train", "en")) == ["a0", "a1", "b0", "b1"]


def test_back_translations_pair_new_sources_with_the_references_after_the_forward_pairs(tmp_path):
    corpus = tiny_corpus(tmp_path / "corpus", pairs=2)
    forward, backward = tmp_path / "hyp.en", tmp_path / "hyp.de"
    forward.write_text("f0\nf1\n", encoding="utf-8")
    backward.write_text("b0\nb1\n", encoding="utf-8")

    both = run(tmp_path / "both", "--corpus", corpus, "--translations", forward, "--back-translations", backward)
    alone = run(tmp_path / "alone", "--corpus", corpus, "--back-translations", backward)

    assert both.returncode == 0 and alone.returncode == 0, both.stderr + alone.stderr
    assert read_lines(multi30k_file(tmp_path / "both", "train", "de")) == [
        "train de 0", "train de 1", "train de 0", "train de 1", "b0", "b1"]
    assert read_lines(multi30k_file(tmp_path / "both", "train", "en")) == [
        "train en 0", "train en 1", "f0", "f1", "train en 0", "train en 1"]
    assert read_lines(multi30k_file(tmp_path / "alone", "train", "de")) == ["train de 0", "train de 1", "b0", "b1"]
    assert read_lines(multi30k_file(tmp_path / "alone", "train", "en")) == ["train en 0", "train en 1"] * 2


def test_neither_kind_of_translation_is_one_line_naming_both_options(tmp_path):
    corpus = tiny_corpus(tmp_path / "corpus")
    done = run(tmp_path / "root", "--corpus", corpus)
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert "--translations" in done.stderr and "--back-translations" in done.stderr
    assert not (tmp_path / "root").exists()


def test_a_file_as_out_root_or_translations_not_in_utf8_are_one_line_each(tmp_path):
    corpus = tiny_corpus(tmp_path / "corpus")
    hypotheses = tmp_path / "hyp.en"
    hypotheses.write_text("one\ntwo\nthree\n")
    (tmp_path / "afile").write_text("")
    done = run(tmp_path / "afile", "--corpus", corpus, "--translations", hypotheses)
    assert done.returncode == 2 and done.stderr.strip().splitlines() == [
        f"error: OUT_ROOT {tmp_path / 'afile'} is a file, not a folder; give a folder (it is created if missing)"]
    latin1 = tmp_path / "latin1.en"
    latin1.write_bytes(hypotheses.read_bytes().replace(b"\n", b" caf\xe9\n", 1))
    done = run(tmp_path / "root", "--corpus", corpus, "--translations", latin1)
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert f"error: {latin1}:1: invalid UTF-8" in done.stderr and "iconv" in done.stderr
    assert not (tmp_path / "root").exists()
