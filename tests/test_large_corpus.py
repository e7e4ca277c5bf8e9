"""Corpora larger than memory: the cached training ids are memory-mapped, not read into lists, and
the trainer runs on them; scripts/make_corpus.py writes a corpus the `files` source reads."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir

from nmt.cli.common import config_dir
from nmt.data import pipeline
from nmt.data.pipeline import prepare_data
from nmt.data.storage import RaggedIds
from nmt.training.trainer import train

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("corpus")
    subprocess.run([sys.executable, str(REPO / "scripts/make_corpus.py"), str(out), "--pairs", "300",
                    "--valid", "10", "--vocab", "300"], check=True, capture_output=True)
    return out


def config(corpus: Path, cache: Path, *overrides: str):
    with initialize_config_dir(config_dir=config_dir(), version_base=None):
        return compose("train", overrides=[
            "experiment=smoke", "data=files", f"data.files.train='{corpus}/train.{{lang}}'",
            f"data.files.val='{corpus}/val.{{lang}}'", f"data.root={corpus}", f"data.cache_dir={cache}",
            "tokenizer.vocab_size=150", "model.emb_size=8", "model.enc_hidden=8", "model.dec_hidden=8",
            "trainer.batch_tokens=256", "trainer.max_steps=2", "trainer.valid_every=2",
            "trainer.valid_max_sentences=2", "trainer.valid_max_len_b=2", "trainer.plot_sentences=0",
            "trainer.progress=false", "trainer.num_threads=1", *overrides])


def test_cached_training_ids_are_memory_mapped_and_equal_the_built_ones(corpus, tmp_path):
    cfg = config(corpus, tmp_path / "cache")
    built = prepare_data(cfg)
    cached = prepare_data(cfg)
    assert isinstance(cached.train_src_ids, RaggedIds) and isinstance(cached.train_src_ids.flat, np.memmap)
    assert cached.train_src_ids == built.train_src_ids and cached.train_tgt_ids == built.train_tgt_ids
    assert cached.train_tgt_ids.lengths().tolist() == [len(t) for t in built.train_tgt_ids]


def test_training_runs_from_the_memory_mapped_cache(corpus, tmp_path):
    cfg = config(corpus, tmp_path / "cache")
    prepare_data(cfg)  # the run below reads the cache
    summary = train(cfg, tmp_path / "run")
    assert summary["steps"] == 2 and (tmp_path / "run/checkpoints/last.pt").is_file()


def test_tokenization_in_worker_processes_gives_the_same_ids(corpus, tmp_path, monkeypatch):
    one = prepare_data(config(corpus, tmp_path / "a", "data.cache=false"))
    monkeypatch.setattr(pipeline, "ENCODE_CHUNK", 100)  # 3 chunks of the 300 pairs
    two = prepare_data(config(corpus, tmp_path / "b", "data.cache=false", "data.num_workers=2"))
    assert two.train_src_ids == one.train_src_ids and two.train_tgt_ids == one.train_tgt_ids
