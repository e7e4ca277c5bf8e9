"""Corpus sources (Multi30k download, hub datasets, local files) and pair cleaning."""

from __future__ import annotations

import gzip
import json
import logging
import os
import urllib.request
from pathlib import Path

import datasets
import pytest
from datasets import Features, Translation
from huggingface_hub import utils as hub_utils
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from nmt.cli.common import config_dir, exit_on_user_error
from nmt.data.cleaning import CleanStats, clean_pairs, drop_long
from nmt.data.corpus import iter_dataset_pairs, load_split, pairs_from_dataset, split_identity
from nmt.data.multi30k import ensure_multi30k, multi30k_file
from nmt.errors import ConfigError, DataError
from nmt.training.trainer import train

DE = ["Ein Hund läuft.", "Zwei Männer.", "Eine Frau singt."]
EN = ["A dog runs.", "Two men.", "A woman sings."]


@pytest.fixture(autouse=True)
def hf_cache(tmp_path, monkeypatch):
    """Keep Hugging Face's dataset cache out of the home folder."""
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-cache")


def write_lines(path: Path, lines: list[str]) -> Path:
    """One sentence per line, gzipped when the name ends in .gz."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = "".join(line + "\n" for line in lines).encode("utf-8")
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


@pytest.fixture
def mirror(tmp_path) -> str:
    """A ``file://`` URL template serving a tiny val split (de, en), standing in for GitHub."""
    folder = tmp_path / "mirror"
    write_lines(folder / "val.de.gz", DE)
    write_lines(folder / "val.en.gz", EN)
    return folder.as_uri() + "/{split}.{lang}.gz"


# ---- Multi30k --------------------------------------------------------------------------------------


def test_ensure_multi30k_downloads_missing_files(tmp_path, mirror, caplog):
    root = tmp_path / "data"
    with caplog.at_level(logging.INFO, logger="nmt.data.multi30k"):
        folder = ensure_multi30k(root, ["val"], ["de", "en"], mirror)
    assert folder == root / "multi30k"
    assert sorted(p.name for p in folder.iterdir()) == ["val.de.gz", "val.en.gz"]  # no temp files left
    with gzip.open(folder / "val.en.gz", "rt") as f:
        assert f.read().splitlines() == EN
    assert "downloading" in caplog.text and "val.de.gz" in caplog.text


def test_ensure_multi30k_never_refetches_present_files(tmp_path, mirror, monkeypatch):
    ensure_multi30k(tmp_path, ["val"], ["de"], mirror)

    def no_network(*args, **kwargs):
        raise AssertionError("tried to download a file that is already there")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    ensure_multi30k(tmp_path, ["val"], ["de"], mirror)


def test_failed_download_names_url_and_manual_destination(tmp_path, mirror):
    with pytest.raises(DataError) as info:
        ensure_multi30k(tmp_path, ["train"], ["de"], mirror)
    message = str(info.value)
    assert "train.de.gz" in message and message.count("file://") == 1
    assert str(multi30k_file(tmp_path, "train", "de")) in message and "by hand" in message
    assert not (tmp_path / "multi30k").exists()  # nothing half-written, and no empty folder left behind


def test_a_download_that_fails_after_another_finished_keeps_the_finished_one(tmp_path, mirror):
    with pytest.raises(DataError, match="could not download"):
        ensure_multi30k(tmp_path / "data", ["val", "train"], ["de"], mirror)  # the mirror has no train split
    assert [path.name for path in (tmp_path / "data/multi30k").iterdir()] == ["val.de.gz"]


def test_download_that_is_not_gzip_is_rejected(tmp_path):
    page = tmp_path / "page" / "val.de.gz"
    page.parent.mkdir()
    page.write_text("<html>Not Found</html>")
    with pytest.raises(DataError, match="could not download"):
        ensure_multi30k(tmp_path / "data", ["val"], ["de"], page.parent.as_uri() + "/{split}.{lang}.gz")
    assert not (tmp_path / "data").exists()  # neither the file nor the folders made for it


def test_unknown_multi30k_split_lists_valid_ones(tmp_path):
    with pytest.raises(ConfigError, match="test_2016_flickr"):
        ensure_multi30k(tmp_path, ["dev"], ["de"])


def test_multi30k_source_downloads_only_the_requested_split(tmp_path, mirror):
    cfg = OmegaConf.create(
        {"source": "multi30k", "root": str(tmp_path), "url": mirror, "src_lang": "de", "tgt_lang": "en"}
    )
    assert load_split(cfg, "val") == (DE, EN)
    assert sorted(p.name for p in (tmp_path / "multi30k").iterdir()) == ["val.de.gz", "val.en.gz"]


@pytest.mark.parametrize(
    ("split", "n"), [("val", 1014), ("test_2016_flickr", 1000), ("test_2017_mscoco", 461)]
)
def test_real_multi30k_splits_are_aligned(multi30k_root, split, n):
    cfg = {"source": "multi30k", "root": str(multi30k_root), "src_lang": "en", "tgt_lang": "fr"}
    src, tgt = load_split(cfg, split)
    assert len(src) == len(tgt) == n


# ---- Hugging Face datasets -------------------------------------------------------------------------


def wmt14_like() -> datasets.Dataset:
    rows = [{"de": d, "en": e} for d, e in zip(DE, EN, strict=True)]
    return datasets.Dataset.from_dict(
        {"translation": rows}, features=Features({"translation": Translation(languages=["de", "en"])})
    )


def opus_books_like() -> datasets.Dataset:
    rows = [{"de": d, "en": e} for d, e in zip(DE, EN, strict=True)]
    return datasets.Dataset.from_dict({"id": ["0", "1", "2"], "translation": rows})


@pytest.mark.parametrize("make", [wmt14_like, opus_books_like])
def test_pairs_from_translation_column(make):
    assert pairs_from_dataset(make(), "de", "en") == (DE, EN)
    assert pairs_from_dataset(make(), "en", "de") == (EN, DE)


def test_pairs_from_one_column_per_language():
    ds = datasets.Dataset.from_dict({"en": EN, "de": [DE[0], None, DE[2]]})
    assert pairs_from_dataset(ds, "de", "en") == ([DE[0], "", DE[2]], EN)


@pytest.mark.parametrize(("de", "message"), [
    ([None, None, ["Ein", "Hund"]], "corpus: row 3: its de text is not a string but a value of type list: ['Ein', 'Hund']"),
    ([1, 2, 3], "corpus: row 1: its de text is not a string but a value of type int: 1"),
])
def test_a_language_column_that_holds_no_text_is_refused_naming_the_row(de, message):
    """It was turned into text: the model trained on "['Ein', 'Hund']" or "1". Rows count across chunks."""
    ds = datasets.Dataset.from_dict({"en": EN, "de": de})
    with pytest.raises(DataError) as error:
        list(iter_dataset_pairs(ds, "de", "en", origin="corpus", chunk_size=2))
    assert str(error.value) == message


@pytest.mark.parametrize("make", [wmt14_like, lambda: datasets.Dataset.from_dict({"de": DE, "en": EN})])
def test_missing_language_lists_those_present(make):
    with pytest.raises(DataError, match="no fr text; languages present: de, en"):
        pairs_from_dataset(make(), "de", "fr")


def test_hub_source_maps_split_names(monkeypatch):
    calls = []

    def fake_load_dataset(name, config, split):
        calls.append((name, config, split))
        return wmt14_like()

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    cfg = OmegaConf.create(
        {
            "source": "hub",
            "name": "wmt14",
            "config": "de-en",
            "src_lang": "en",
            "tgt_lang": "de",
            "splits": {"train": "train", "val": "validation"},
        }
    )
    assert load_split(cfg, "val") == (EN, DE)
    assert calls == [("wmt14", "de-en", "validation")]
    with pytest.raises(ConfigError, match="configured: train, val"):
        load_split(cfg, "test")


def test_hub_failure_is_a_data_error(monkeypatch):
    def offline(*args, **kwargs):
        raise ConnectionError("Couldn't reach the Hub\nsecond line")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    cfg = {"source": "hub", "name": "opus_books", "config": "", "src_lang": "de", "tgt_lang": "en"}
    with pytest.raises(
        DataError, match=r"^cannot load hub dataset opus_books \(split train\): Couldn't reach the Hub$"
    ):
        load_split(cfg, "train")


def test_a_local_hub_folder_without_the_configured_config_names_data_config_and_the_choices(tmp_path):
    """data=hub keeps wmt14's data.config=de-en; a folder of one's own files has only `default`."""
    folder = tmp_path / "my_corpus"
    folder.mkdir()
    rows = [{"translation": {"de": de, "en": en}} for de, en in zip(DE, EN, strict=True)]
    for split in ("train", "validation"):
        write_jsonl(folder / f"{split}.jsonl", rows)
    hub = {"source": "hub", "name": str(folder), "config": "de-en", "src_lang": "de", "tgt_lang": "en",
           "splits": {"train": "train", "val": "validation"}}
    with pytest.raises(ConfigError) as refused:
        load_split(hub, "val")
    assert str(refused.value) == (f"data.config='de-en' is not a configuration of hub dataset {folder}; choose one "
                                  "of: default, or data.config=null for its default")
    assert load_split({**hub, "config": None}, "val") == (DE, EN)


@pytest.mark.parametrize("progress", [True, False])
def test_trainer_progress_false_hides_the_progress_bars_of_datasets_too(tmp_path, capfd, progress):
    folder = tmp_path / "my_corpus"
    folder.mkdir()
    rows = [{"translation": {"de": de, "en": en}} for de, en in zip(DE, EN, strict=True)]
    write_jsonl(folder / "train.jsonl", rows * 10)
    write_jsonl(folder / "validation.jsonl", rows)
    with initialize_config_dir(config_dir=config_dir(), version_base=None):
        cfg = compose("train", overrides=[
            "data=hub", f"data.name='{folder}'", "data.config=null", "data.cache=false", "device=cpu",
            "tokenizer.vocab_size=30", "model.emb_size=8", "model.enc_hidden=8", "model.dec_hidden=8",
            "trainer.max_steps=1", "trainer.plot_sentences=0", f"trainer.progress={str(progress).lower()}"])
    train(cfg, tmp_path / "run")
    shown = "Generating train split" in capfd.readouterr().err
    assert shown == progress
    assert not datasets.are_progress_bars_disabled() and not hub_utils.are_progress_bars_disabled()  # as before


@pytest.mark.parametrize(("reason", "choices"), [
    ("BuilderConfig 'xx' not found. Available: ['a', 'b']", "choose one of: a, b, or "),
    ("BuilderConfig 'xx' not found.", "choose one of its configurations, or "),
    (f"BuilderConfig 'xx' not found. Available: {[str(n) for n in range(20)]}",
     "choose one of: 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11 (20 in all), or "),
])
def test_an_unknown_hub_config_lists_at_most_a_dozen_choices(monkeypatch, reason, choices):
    def unknown_config(*args, **kwargs):
        raise ValueError(reason)

    monkeypatch.setattr(datasets, "load_dataset", unknown_config)
    cfg = {"source": "hub", "name": "opus100", "config": "xx", "src_lang": "de", "tgt_lang": "en"}
    with pytest.raises(ConfigError) as refused:
        load_split(cfg, "train")
    assert str(refused.value) == (f"data.config='xx' is not a configuration of hub dataset opus100; {choices}"
                                  "data.config=null for its default")


# ---- local files -----------------------------------------------------------------------------------


def files_cfg(fmt: str, template: str, **extra) -> dict:
    return {
        "source": "files",
        "format": fmt,
        "files": {"train": template},
        "src_lang": "de",
        "tgt_lang": "en",
        **extra,
    }


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_text_files_relative_to_working_directory(tmp_path, monkeypatch, suffix):
    write_lines(tmp_path / f"corpus/train.de{suffix}", DE)
    write_lines(tmp_path / f"corpus/train.en{suffix}", EN)
    monkeypatch.chdir(tmp_path)
    assert load_split(files_cfg("text", "corpus/train.{lang}" + suffix), "train") == (DE, EN)


def test_text_template_without_lang_is_a_config_error():
    with pytest.raises(ConfigError, match=r"\{lang\}"):
        load_split(files_cfg("text", "corpus/train.txt"), "train")


def test_tsv_files(tmp_path):
    path = tmp_path / "train.tsv"
    path.write_text("".join(f"{d}\t{e}\n" for d, e in zip(DE, EN, strict=True)))
    assert load_split(files_cfg("tsv", str(path)), "train") == (DE, EN)


def test_tsv_line_without_one_tab_names_file_and_line(tmp_path):
    path = tmp_path / "train.tsv"
    path.write_text("a\tb\nno tab here\n")
    with pytest.raises(DataError, match=r"train\.tsv:2: expected 'source<TAB>target', found 1 field"):
        load_split(files_cfg("tsv", str(path)), "train")


def test_tsv_line_with_a_second_tab_is_refused_not_cut(tmp_path):
    """A tab inside a sentence would silently drop text (or shift it to the other side)."""
    path = tmp_path / "train.tsv"
    path.write_text("a\tb\nein hund\ta dog\truns\n")
    with pytest.raises(DataError, match=r"train\.tsv:2: expected 'source<TAB>target', found 3 fields"):
        load_split(files_cfg("tsv", str(path)), "train")


def write_jsonl(path: Path, rows: list) -> Path:
    """One JSON value a line; a str row is written as it is (a broken line)."""
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n" for r in rows))
    return path


@pytest.mark.parametrize("nested", [True, False])
def test_jsonl_files_nested_or_flat(tmp_path, nested):
    rows = [{"translation": {"de": d, "en": e}} if nested else {"de": d, "en": e, "id": 1}
            for d, e in zip(DE, EN, strict=True)]
    path = write_jsonl(tmp_path / "train.jsonl", [rows[0], "", rows[1], "  ", rows[2]])  # blank lines skipped
    assert load_split(files_cfg("jsonl", str(path)), "train") == (DE, EN)


def test_jsonl_null_text_is_an_empty_side_and_gzip_is_read(tmp_path):
    path = tmp_path / "train.jsonl.gz"
    path.write_bytes(gzip.compress(b'{"de": "a", "en": null}\n{"translation": {"de": null, "en": "b"}}\n'))
    assert load_split(files_cfg("jsonl", str(path)), "train") == (["a", ""], ["", "b"])


GOOD_ROW = {"translation": {"de": "a", "en": "b"}}


@pytest.mark.parametrize(("bad_row", "message"), [
    ('{"de": "a", "en": ', "invalid JSON (Expecting value at column 19)"),
    ('{"de": "a" "en": "b"}', "invalid JSON (Expecting ',' delimiter at column 12)"),
    ('{"de": "a", "en": "b', "invalid JSON (Unterminated string starting at column 19)"),
    ({"translation": {"de": "a"}}, 'no "en" in the translation (found: de)'),
    ({"translation": {}}, 'no "de" or "en" in the translation (found: nothing)'),
    ({"de": "a", "fr": "b"}, 'no "en" in the row (found: de, fr)'),
    (["a", "b"], "expected a JSON object, found array"),
    ({"translation": "a b"}, "expected a JSON object as translation, found string"),
    ({"de": ["Ein", "Hund"], "en": "A dog"}, '"de" is a JSON array, not a string (the sentence) or null'),
    ({"de": "Ein Hund", "en": {"text": "A dog"}}, '"en" is a JSON object, not a string (the sentence) or null'),
    ({"translation": {"de": 5, "en": "five"}}, '"de" is a JSON number, not a string (the sentence) or null'),
    ({"de": "wahr", "en": True}, '"en" is a JSON boolean, not a string (the sentence) or null'),
    pytest.param("[" * 200_000, "invalid JSON (nested too deeply)", id="200,000 ["),  # a RecursionError
])
def test_bad_jsonl_line_is_named(tmp_path, bad_row, message):
    path = write_jsonl(tmp_path / "train.jsonl", [GOOD_ROW, GOOD_ROW, "", GOOD_ROW, bad_row, GOOD_ROW])
    with pytest.raises(DataError) as error:
        load_split(files_cfg("jsonl", str(path)), "train")
    assert str(error.value) == f"{path}:5: {message}"


def test_bad_jsonl_is_one_error_line_with_exit_2(tmp_path, capsys):
    path = write_jsonl(tmp_path / "train.jsonl", [GOOD_ROW, "{"])
    with pytest.raises(SystemExit) as exit_info:
        exit_on_user_error(lambda _: load_split(files_cfg("jsonl", str(path)), "train"))(None)
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == f"error: {path}:2: invalid JSON (Expecting property name enclosed in " \
        "double quotes at column 2)\n"


def test_jsonl_invalid_utf8_names_the_line_or_is_replaced(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_bytes(b'{"de": "a", "en": "b"}\n{"de": "M\xfcnchen", "en": "Munich"}\n')
    with pytest.raises(DataError, match=r"^.*train\.jsonl:2: invalid UTF-8 \(byte 0xfc at byte column 10\); set "
                       r"data.on_decode_error=replace"):
        load_split(files_cfg("jsonl", str(path)), "train")
    replaced = load_split(files_cfg("jsonl", str(path), on_decode_error="replace"), "train")
    assert replaced == (["a", "M\ufffdnchen"], ["b", "Munich"])


def test_missing_jsonl_file_is_named(tmp_path):
    with pytest.raises(DataError, match=r"missing\.jsonl: no such file"):
        load_split(files_cfg("jsonl", str(tmp_path / "missing.jsonl")), "train")


def test_unknown_choices_list_the_valid_ones():
    with pytest.raises(ConfigError, match="valid: multi30k, hub, files"):
        load_split({"source": "web", "src_lang": "de", "tgt_lang": "en"}, "train")
    with pytest.raises(ConfigError, match="valid: text, tsv, jsonl"):
        load_split(files_cfg("csv", "x"), "train")
    with pytest.raises(ConfigError, match="split 'val' is not configured in data.files; configured: train"):
        load_split(files_cfg("tsv", "x"), "val")


def test_split_identity_tracks_file_changes(tmp_path):
    path = tmp_path / "train.tsv"
    path.write_text("a\tb\n")
    cfg = files_cfg("tsv", str(path))
    before = split_identity(cfg, "train")
    assert before == split_identity(cfg, "train")
    path.write_text("a\tb\nc\td\n")
    os.utime(path, ns=(1, 1))
    assert split_identity(cfg, "train") != before


def test_split_identity_of_a_hub_name_is_its_coordinates(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no local folder called wmt14
    hub = {"source": "hub", "name": "wmt14", "config": "de-en", "splits": {"train": "train"}}
    assert split_identity(hub, "train") == {"source": "hub", "name": "wmt14", "config": "de-en", "split": "train"}


def test_a_pinned_hub_revision_is_loaded_and_part_of_the_identity(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    calls = []

    def fake_load_dataset(name, config, split, **options):
        calls.append(options)
        return wmt14_like()

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    hub = {"source": "hub", "name": "wmt14", "config": "de-en", "src_lang": "en", "tgt_lang": "de",
           "splits": {"train": "train"}}
    pinned = {**hub, "revision": "v1.0"}
    assert load_split(pinned, "train") == (EN, DE) and calls == [{"revision": "v1.0"}]
    assert split_identity(pinned, "train") == {**split_identity(hub, "train"), "revision": "v1.0"}
    assert split_identity({**pinned, "revision": "v2.0"}, "train") != split_identity(pinned, "train")


def test_split_identity_of_a_local_hub_dataset_tracks_its_files(tmp_path, monkeypatch):
    folder = tmp_path / "my_corpus"
    (folder / "data").mkdir(parents=True)
    (folder / ".cache").mkdir()
    write_jsonl(folder / "train.jsonl", [GOOD_ROW])
    write_jsonl(folder / "data" / "valid.jsonl", [GOOD_ROW])
    (folder / ".cache" / "lock").write_text("x")
    monkeypatch.chdir(tmp_path)
    hub = {"source": "hub", "name": "my_corpus", "config": None}
    before = split_identity(hub, "train")
    assert [f["path"] for f in before["files"]] == [str(folder / "data" / "valid.jsonl"), str(folder / "train.jsonl")]
    assert split_identity({**hub, "name": str(folder)}, "train") == {**before, "name": str(folder)}
    (folder / ".cache" / "lock").write_text("changed")  # hidden files are not data (datasets skips them)
    assert split_identity(hub, "train") == before
    os.utime(folder / "train.jsonl", ns=(1, 1))  # same size, another modification time
    touched = split_identity(hub, "train")
    assert touched != before and touched["files"][1]["mtime_ns"] == 1
    write_jsonl(folder / "data" / "valid.jsonl", [GOOD_ROW, GOOD_ROW])
    assert split_identity(hub, "train")["files"][0]["size"] > before["files"][0]["size"]
    single = {**hub, "name": str(folder / "train.jsonl")}
    assert [f["path"] for f in split_identity(single, "train")["files"]] == [str(folder / "train.jsonl")]


# ---- cleaning --------------------------------------------------------------------------------------


def test_clean_pairs_counts_and_keeps_alignment():
    src = ["  a b ", "", "c", "d e f g", "h", "   "]
    tgt = ["x", "y", " ", "z", "w v u t s", "q"]
    kept_src, kept_tgt, stats = clean_pairs(src, tgt, max_len=3)
    assert (kept_src, kept_tgt) == (["a b"], ["x"])
    assert stats == CleanStats(read=6, empty_dropped=3, too_long_dropped=2, kept=1)
    assert str(stats) == "read 6, dropped 3 with an empty side and 2 too long, kept 1"


def test_clean_pairs_custom_length_and_no_limit():
    assert clean_pairs(["abcd", "ab"], ["x", "y"], max_len=3, length_fn=len)[:2] == (["ab"], ["y"])
    assert clean_pairs(["a " * 500], ["b"])[2].kept == 1


def test_drop_long_updates_stats():
    stats = CleanStats(read=3, kept=3)
    src, tgt = drop_long([[1], [1, 2, 3], [1]], [[1], [1], [1, 2, 3]], 2, stats)
    assert (src, tgt) == ([[1]], [[1]])
    assert stats == CleanStats(read=3, too_long_dropped=2, kept=1)
