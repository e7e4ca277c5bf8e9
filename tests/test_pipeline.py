"""prepare_data end to end: cleaning, subword length filter, run-dir models and the data cache."""

from __future__ import annotations

import json
import logging
import os
import random
import re
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from nmt.data import pipeline
from nmt.data.pipeline import cache_key, load_test_split, prepare_data
from nmt.data.tokenizer import SubwordTokenizer
from nmt.errors import ConfigError, DataError

WORDS = (
    "a an the dog cat man woman child boy girl runs jumps sits stands plays throws rides on in at "
    "park street water beach ball bicycle big small red blue white black ein der hund läuft"
).split()


def toy_lines(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choices(WORDS, k=rng.randint(2, 12))) for _ in range(n)]


def make_cfg(data: dict, **tokenizer) -> OmegaConf:
    tok = {"type": "unigram", "joint": True, "vocab_size": 60, "character_coverage": 1.0, "sample_size": 0}
    return OmegaConf.create({"seed": 7, "data": data, "tokenizer": {**tok, **tokenizer}})


@pytest.fixture
def toy_corpus(tmp_path) -> dict:
    """A files/tsv corpus: 200 training pairs (two of them with an empty side) and 20 validation pairs."""
    train = [f"{s}\t{t}" for s, t in zip(toy_lines(200, 1), toy_lines(200, 2), strict=True)]
    train[5], train[9] = "\tonly target", "only source\t   "
    (tmp_path / "train.tsv").write_text("\n".join(train) + "\n")
    valid = [f"{s}\t{t}" for s, t in zip(toy_lines(20, 3), toy_lines(20, 4), strict=True)]
    (tmp_path / "val.tsv").write_text("\n".join(valid) + "\n")
    return {
        "source": "files",
        "format": "tsv",
        "src_lang": "xx",
        "tgt_lang": "yy",
        "files": {"train": str(tmp_path / "train.tsv"), "val": str(tmp_path / "val.tsv")},
        "root": str(tmp_path),
        "cache": False,
        "max_len": None,
        "max_train_examples": None,
    }


def test_prepare_data_cleans_and_tokenizes(toy_corpus, tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="nmt.data.pipeline"):
        data = prepare_data(make_cfg(toy_corpus), run_dir=tmp_path / "run")
    assert "training SentencePiece (unigram, 60 pieces, joint) on 198 sentence pairs" in caplog.text
    assert data.stats["train"].read == 200 and data.stats["train"].empty_dropped == 2
    assert len(data.train_src_ids) == len(data.train_tgt_ids) == data.stats["train"].kept == 198
    assert len(data.valid_src_ids) == len(data.valid_src_text) == 20
    assert data.tokenizers.src.decode(data.valid_src_ids) == data.valid_src_text
    assert (tmp_path / "run" / "spm.model").read_bytes() == data.tokenizers.src.to_bytes()


def test_max_len_counts_subwords_on_train_only(toy_corpus):
    data = prepare_data(make_cfg({**toy_corpus, "max_len": 10}))
    assert max(data.train_src_ids.lengths().max(), data.train_tgt_ids.lengths().max()) <= 10
    assert data.stats["train"].too_long_dropped > 0
    assert data.stats["train"].kept == len(data.train_src_ids) == 198 - data.stats["train"].too_long_dropped
    assert len(data.valid_src_ids) == 20 and max(len(s) for s in data.valid_src_ids) > 10


@pytest.mark.parametrize(("limits", "advice"), [
    ({"sample_size": 5}, "lower tokenizer.vocab_size or raise tokenizer.sample_size (it sampled 5 of 198 pairs; "
                         "0 takes every pair)"),
    ({"max_train_examples": 5}, "lower tokenizer.vocab_size or raise data.max_train_examples (now 5)"),
    ({"sample_size": 5, "max_train_examples": 50}, "lower tokenizer.vocab_size, raise tokenizer.sample_size (it "
                                                   "sampled 5 of 48 pairs; 0 takes every pair) or raise "
                                                   "data.max_train_examples (now 50)"),
    ({}, "lower tokenizer.vocab_size or use more training data"),
])
def test_a_vocab_size_too_large_for_the_sample_names_the_options_that_limited_it(toy_corpus, limits, advice):
    cfg = make_cfg({**toy_corpus, "max_train_examples": limits.get("max_train_examples")}, vocab_size=120,
                   sample_size=limits.get("sample_size", 0))
    with pytest.raises(ConfigError) as refused:
        prepare_data(cfg)
    problem, _, ways = str(refused.value).partition("; ")
    assert re.fullmatch(r"tokenizer.vocab_size=120 is too large for \d+ training sentences \(at most \d+ for "
                        r"these sentences\)", problem)
    assert ways == advice


def test_max_train_examples_takes_the_first_pairs(toy_corpus):
    data = prepare_data(make_cfg({**toy_corpus, "max_train_examples": 50}))
    assert data.stats["train"].read == 50 and len(data.train_src_ids) == 48


def test_separate_tokenizers_save_two_models(toy_corpus, tmp_path):
    prepare_data(make_cfg(toy_corpus, joint=False, vocab_size=50), run_dir=tmp_path / "run")
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["spm.src.model", "spm.tgt.model"]


def test_empty_training_corpus_is_a_data_error(toy_corpus, tmp_path):
    (tmp_path / "train.tsv").write_text(" \tx\ny\t\n")
    with pytest.raises(DataError, match=r"training corpus is empty after cleaning \(read 2, dropped 2"):
        prepare_data(make_cfg(toy_corpus))


def test_cache_key_follows_what_determines_the_data(toy_corpus, tmp_path):
    base = cache_key(make_cfg(toy_corpus))
    assert cache_key(make_cfg(toy_corpus)) == base
    assert cache_key(make_cfg(toy_corpus, vocab_size=61)) != base
    assert cache_key(make_cfg({**toy_corpus, "max_len": 50})) != base
    assert cache_key(make_cfg({**toy_corpus, "max_train_examples": 10})) != base
    assert cache_key(make_cfg({**toy_corpus, "src_lang": "zz"})) != base
    # Subword sampling resegments in the trainer: the same prepared data serves it.
    assert cache_key(make_cfg(toy_corpus, subword_alpha=0.1, subword_nbest=-1)) == base
    os.utime(tmp_path / "val.tsv", ns=(1, 1))
    assert cache_key(make_cfg(toy_corpus)) != base


def test_cache_key_changes_with_the_cache_format_and_with_streaming(toy_corpus, monkeypatch):
    """A cache written in another layout, or by a stream (which samples its head rather than a
    reservoir), is not this run's data."""
    base = cache_key(make_cfg(toy_corpus))
    monkeypatch.setattr(pipeline, "CACHE_FORMAT", pipeline.CACHE_FORMAT + 1)
    assert cache_key(make_cfg(toy_corpus)) != base
    hub = {"source": "hub", "name": "org/corpus-not-on-disk", "config": None, "src_lang": "xx", "tgt_lang": "yy",
           "splits": {"train": "train", "val": "validation"}, "cache": True}
    assert cache_key(make_cfg({**hub, "streaming": True})) != cache_key(make_cfg({**hub, "streaming": False}))


@pytest.fixture
def text_corpus(tmp_path) -> dict:
    """A files/text corpus (one file per language), cached; the same pairs are in <split>.jsonl."""
    for split, n, seed in (("train", 200, 1), ("val", 20, 3)):
        xx, yy = toy_lines(n, seed), toy_lines(n, seed + 1)
        (tmp_path / f"{split}.xx").write_text("\n".join(xx) + "\n")
        (tmp_path / f"{split}.yy").write_text("\n".join(yy) + "\n")
        (tmp_path / f"{split}.jsonl").write_text("".join(json.dumps({"xx": x, "yy": y}) + "\n"
                                                         for x, y in zip(xx, yy, strict=True)))
    return {"source": "files", "format": "text", "src_lang": "xx", "tgt_lang": "yy",
            "files": {"train": str(tmp_path / "train.{lang}"), "val": str(tmp_path / "val.{lang}")},
            "root": str(tmp_path), "cache": True, "cache_dir": str(tmp_path / "cache"), "max_len": None,
            "max_train_examples": None}


def prepared_content(data) -> tuple:
    return (data.tokenizers.src.to_bytes(), [ids.tolist() for ids in data.train_src_ids],
            [ids.tolist() for ids in data.train_tgt_ids], data.valid_src_ids, data.valid_tgt_text)


@pytest.mark.parametrize("change", ["training file rewritten", "seed", "sample_size", "languages swapped"])
def test_a_change_that_changes_the_data_is_never_served_the_old_cache(text_corpus, tmp_path, change):
    """After a first run filled the cache, a run with one setting changed gets the data a run without
    a cache would prepare, not the cached data of the first."""
    if change == "languages swapped":  # one file holds both languages: only data.src_lang tells the direction
        text_corpus = {**text_corpus, "format": "jsonl",
                       "files": {"train": str(tmp_path / "train.jsonl"), "val": str(tmp_path / "val.jsonl")}}
    before = make_cfg(text_corpus, sample_size=80)
    old = prepared_content(prepare_data(before))
    after = make_cfg(text_corpus, sample_size=80)
    if change == "training file rewritten":  # the same lines in another order: the same size
        lines = (tmp_path / "train.xx").read_text().splitlines()
        (tmp_path / "train.xx").write_text("\n".join(reversed(lines)) + "\n")
        os.utime(tmp_path / "train.xx", ns=(10**18, 10**18))
    elif change == "seed":  # another sample for SentencePiece
        after.seed = 8
    elif change == "sample_size":  # all pairs instead of 80
        after.tokenizer.sample_size = 0
    else:  # yy -> xx instead of xx -> yy
        after.data.src_lang, after.data.tgt_lang = "yy", "xx"
    served = prepared_content(prepare_data(after))
    uncached = OmegaConf.merge(after, {"data": {"cache": False}})
    expected = prepared_content(prepare_data(uncached))
    assert expected != old  # the change does change the data ...
    assert served == expected  # ... and the cached run sees it


def test_a_cache_prepared_with_bad_bytes_replaced_does_not_hide_them_from_a_strict_run(text_corpus, tmp_path):
    (tmp_path / "train.xx").write_bytes((tmp_path / "train.xx").read_bytes() + b"schl\xe9cht\n")
    (tmp_path / "train.yy").write_bytes((tmp_path / "train.yy").read_bytes() + b"bad\n")
    prepare_data(make_cfg({**text_corpus, "on_decode_error": "replace"}))
    with pytest.raises(DataError, match=r"train\.xx:201"):
        prepare_data(make_cfg({**text_corpus, "on_decode_error": "error"}))


@pytest.mark.parametrize("damage", ["garbage", "empty", "truncated"])
def test_corrupt_cache_is_rebuilt(toy_corpus, tmp_path, caplog, damage):
    cfg = make_cfg({**toy_corpus, "cache": True, "cache_dir": str(tmp_path / "cache")})
    first = [ids.tolist() for ids in prepare_data(cfg).train_src_ids]  # copied: the file is overwritten below
    (cache_file,) = (tmp_path / "cache").iterdir()
    whole = cache_file.read_bytes()
    cache_file.write_bytes({"garbage": b"garbage", "empty": b"", "truncated": whole[:len(whole) // 2]}[damage])
    with caplog.at_level(logging.WARNING, logger="nmt.data.pipeline"):
        again = prepare_data(cfg)
    assert "ignoring unreadable data cache" in caplog.text
    assert [ids.tolist() for ids in again.train_src_ids] == first


def test_load_test_split_keeps_every_line(tmp_path, toy_corpus):
    (tmp_path / "test.tsv").write_text("  a b \tx\n\ty\n")
    cfg = make_cfg({**toy_corpus, "files": {**toy_corpus["files"], "test": str(tmp_path / "test.tsv")}})
    assert load_test_split(cfg, "test") == (["a b", ""], ["x", "y"])


def test_multi30k_slice_is_cached(multi30k_root, tmp_path, monkeypatch, caplog):
    data = {
        "source": "multi30k",
        "root": str(multi30k_root),
        "url": None,
        "src_lang": "de",
        "tgt_lang": "en",
        "train_split": "train",
        "valid_split": "val",
        "max_train_examples": 2000,
        "max_len": 60,
        "on_decode_error": "error",
        "cache": True,
        "cache_dir": str(tmp_path / "cache"),
    }
    cfg = make_cfg(data, vocab_size=500)
    with caplog.at_level(logging.INFO, logger="nmt.data.pipeline"):
        first = prepare_data(cfg, run_dir=tmp_path / "run1")
    assert first.stats["train"].read == 2000 and 1500 < len(first.train_src_ids) == first.stats["train"].kept
    assert len(first.valid_src_text) == 1014 and first.tokenizers.src.vocab_size == 500
    assert "saved prepared data to" in caplog.text

    def no_training(*args, **kwargs):
        raise AssertionError("SentencePiece was retrained despite a cache hit")

    monkeypatch.setattr(SubwordTokenizer, "train", no_training)
    monkeypatch.setattr(pipeline.Tokenizers, "train_from_config", no_training)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="nmt.data.pipeline"):
        second = prepare_data(cfg, run_dir=tmp_path / "run2")
    assert "loaded cached data from" in caplog.text
    for field in (
        "train_src_ids",
        "train_tgt_ids",
        "valid_src_ids",
        "valid_tgt_ids",
        "valid_src_text",
        "valid_tgt_text",
        "stats",
    ):
        assert getattr(second, field) == getattr(first, field), field
    assert second.tokenizers.src.to_bytes() == first.tokenizers.src.to_bytes()
    assert (tmp_path / "run2" / "spm.model").read_bytes() == (tmp_path / "run1" / "spm.model").read_bytes()
    (cache_file,) = Path(tmp_path / "cache").iterdir()
    with np.load(cache_file, allow_pickle=False) as arrays:  # loadable without pickle: plain arrays only
        assert arrays["train_src_ids_flat"].dtype == np.int32
    assert not any(Path(multi30k_root).rglob("*.npz"))  # nothing written into the shared data folder


@pytest.mark.parametrize(("key", "value"), [("max_len", 0), ("max_train_examples", -3), ("max_len", "10")])
def test_bad_counts_are_config_errors(toy_corpus, key, value):
    with pytest.raises(ConfigError, match=f"data.{key} must be null or a positive integer"):
        prepare_data(make_cfg({**toy_corpus, key: value}))
