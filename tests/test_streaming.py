"""Constant-memory preparation: the reservoir sample, bounded tokenization, the streamed `.npz`
writer, and prepare_data reading the training split chunk by chunk (also from a hub stream)."""

from __future__ import annotations

import collections

import datasets
import numpy as np
import pytest
from omegaconf import OmegaConf
from test_pipeline import toy_lines

from nmt.data import pipeline
from nmt.data.pipeline import prepare_data
from nmt.data.storage import NpzWriter, memmap_npz_member
from nmt.data.streaming import IdFile, Reservoir, encode_chunks
from nmt.data.tokenizer import SubwordTokenizer, Tokenizers
from nmt.errors import ConfigError


def sample_of(stream: list[int], size: int, seed: int, chunk: int) -> list[int]:
    reservoir = Reservoir(size, seed)
    for start in range(0, len(stream), chunk):
        reservoir.add(stream[start:start + chunk])
    return reservoir.items


def test_reservoir_keeps_a_short_stream_whole_and_in_order():
    assert sample_of(list(range(30)), 50, seed=0, chunk=7) == list(range(30))
    assert sample_of(list(range(30)), None, seed=0, chunk=7) == list(range(30))


def test_reservoir_sample_depends_on_seed_not_on_chunking():
    stream = list(range(10_000))
    a = sample_of(stream, 100, seed=3, chunk=1)
    assert a == sample_of(stream, 100, seed=3, chunk=997) == sample_of(stream, 100, seed=3, chunk=10_000)
    assert len(set(a)) == 100 and set(a) <= set(stream)
    assert a != sample_of(stream, 100, seed=4, chunk=997)


def test_reservoir_sample_is_uniform():
    # Every item of a 200-item stream must land in a 20-item sample with probability 0.1: over 2,000
    # seeds each is expected 200 times (sd 13.4); a bias towards the head or tail of the stream
    # (the usual reservoir bugs) moves whole regions far outside these bounds.
    counts = collections.Counter(i for seed in range(2000) for i in sample_of(list(range(200)), 20, seed, chunk=64))
    per_item = np.array([counts[i] for i in range(200)])
    assert per_item.min() > 140 and per_item.max() < 260
    assert abs(per_item[:100].mean() - per_item[100:].mean()) < 10


def test_encode_chunks_keeps_few_chunks_in_flight():
    texts = toy_lines(400, 5)
    tokenizer = SubwordTokenizer.train(texts, vocab_size=40, seed=0)
    tokenizers = Tokenizers(tokenizer, tokenizer, joint=True)
    chunks = [(texts[i:i + 10], texts[i:i + 10]) for i in range(0, 400, 10)]  # 40 chunks
    pulled = 0

    def source():
        nonlocal pulled
        for chunk in chunks:
            pulled += 1
            yield chunk

    results = encode_chunks(tokenizers, source(), workers=2)
    first = next(results)
    assert pulled <= 2 * 2 + 1  # not the whole input, as Pool.imap would have read
    rest = list(results)
    assert [first, *rest] == [(tokenizer.encode(s), tokenizer.encode(t)) for s, t in chunks]


def test_npz_writer_copies_a_file_member_that_memory_maps(tmp_path):
    ids = IdFile(tmp_path / "ids")
    ids.append([[5, 6, 7], [], [8]])
    ids.append([[9, 10]])
    ids.close()
    with open(tmp_path / "out.npz", "wb") as f:
        npz = NpzWriter(f)
        npz.add("offsets", ids.offsets())
        npz.add_file("flat", ids.path, np.int32)
        npz.close()
    with np.load(tmp_path / "out.npz", allow_pickle=False) as arrays:
        assert arrays["offsets"].tolist() == [0, 3, 3, 4, 6]
        assert arrays["flat"].dtype == np.int32 and arrays["flat"].tolist() == [5, 6, 7, 8, 9, 10]
    mapped = memmap_npz_member(tmp_path / "out.npz", "flat")
    assert isinstance(mapped, np.memmap) and mapped.tolist() == [5, 6, 7, 8, 9, 10]


def corpus_cfg(tmp_path, n: int = 300, **data) -> OmegaConf:
    (tmp_path / "train.xx").write_text("\n".join(toy_lines(n, 1)) + "\n")
    (tmp_path / "train.yy").write_text("\n".join(toy_lines(n, 2)) + "\n")
    (tmp_path / "val.xx").write_text("\n".join(toy_lines(10, 3)) + "\n")
    (tmp_path / "val.yy").write_text("\n".join(toy_lines(10, 4)) + "\n")
    files = {"train": str(tmp_path / "train.{lang}"), "val": str(tmp_path / "val.{lang}")}
    tokenizer = {"type": "unigram", "joint": True, "vocab_size": 60, "character_coverage": 1.0, "sample_size": 0}
    return OmegaConf.create({
        "seed": 7, "tokenizer": tokenizer,
        "data": {"source": "files", "format": "text", "src_lang": "xx", "tgt_lang": "yy", "files": files,
                 "root": str(tmp_path), "cache": False, "max_len": None, "max_train_examples": None, **data}})


def test_training_split_is_tokenized_chunk_by_chunk(tmp_path, monkeypatch):
    whole = prepare_data(corpus_cfg(tmp_path))
    monkeypatch.setattr(pipeline, "ENCODE_CHUNK", 40)
    sizes = []
    real_encode = SubwordTokenizer.encode
    monkeypatch.setattr(SubwordTokenizer, "encode", lambda self, texts: sizes.append(len(texts)) or real_encode(self, texts))
    chunked = prepare_data(corpus_cfg(tmp_path))
    assert max(sizes[:-2]) == 40  # the last two calls are the validation split
    assert chunked.train_src_ids == whole.train_src_ids and chunked.train_tgt_ids == whole.train_tgt_ids
    assert chunked.stats == whole.stats


def test_max_train_examples_ending_inside_a_chunk_takes_exactly_that_many_pairs(tmp_path, monkeypatch):
    """data.max_train_examples=250 read in chunks of 40: the seventh chunk is cut after its 10th pair."""
    whole = prepare_data(corpus_cfg(tmp_path, n=300, max_train_examples=250))
    monkeypatch.setattr(pipeline, "ENCODE_CHUNK", 40)
    chunked = prepare_data(corpus_cfg(tmp_path, n=300, max_train_examples=250))
    assert len(chunked.train_src_ids) == len(whole.train_src_ids) == 250
    assert chunked.train_src_ids == whole.train_src_ids and chunked.train_tgt_ids == whole.train_tgt_ids


def test_sentencepiece_trains_on_the_sampled_pairs_only(tmp_path, monkeypatch):
    seen = []
    real_train = Tokenizers.train_from_config.__func__
    monkeypatch.setattr(Tokenizers, "train_from_config", classmethod(
        lambda cls, tok_cfg, src, tgt, seed: seen.append((tok_cfg["sample_size"], list(src))) or
        real_train(cls, tok_cfg, src, tgt, seed)))
    data = prepare_data(corpus_cfg(tmp_path, n=300, max_train_examples=250), )
    assert seen[0][0] == 0 and len(seen[0][1]) == 250  # sample_size=0: all (cleaned) pairs
    seen.clear()
    cfg = corpus_cfg(tmp_path, n=300, max_train_examples=250)
    cfg.tokenizer.sample_size = 100
    sampled = prepare_data(cfg)
    assert seen[0][0] == 0 and len(seen[0][1]) == 100 and set(seen[0][1]) <= set(toy_lines(250, 1))
    assert len(sampled.train_src_ids) == len(data.train_src_ids) == 250  # all pairs are still tokenized


def sentencepiece_samples(monkeypatch) -> list[list[str]]:
    """The source sentences SentencePiece is trained on, one list per training."""
    seen, real_train = [], Tokenizers.train_from_config.__func__
    monkeypatch.setattr(Tokenizers, "train_from_config", classmethod(
        lambda cls, tok_cfg, src, tgt, seed: seen.append(list(src)) or real_train(cls, tok_cfg, src, tgt, seed)))
    return seen


def test_the_sentencepiece_sample_follows_the_seed(tmp_path, monkeypatch):
    seen = sentencepiece_samples(monkeypatch)
    for seed in (7, 7, 8):
        cfg = corpus_cfg(tmp_path, n=300)
        cfg.seed, cfg.tokenizer.sample_size = seed, 100
        prepare_data(cfg)
    assert [len(sample) for sample in seen] == [100, 100, 100]
    assert seen[0] == seen[1] and seen[0] != seen[2]


class CountingStream:
    """A hub dataset in streaming mode whose reads are counted (`datasets.IterableDataset`)."""

    def __init__(self, pairs: list[tuple[str, str]]):
        self.passes = 0

        def rows():
            self.passes += 1
            for s, t in pairs:
                yield {"translation": {"xx": s, "yy": t}}

        self.dataset = datasets.IterableDataset.from_generator(rows)


def hub_cfg(sample_size: int, streaming: bool) -> OmegaConf:
    tokenizer = {"type": "unigram", "joint": True, "vocab_size": 60, "character_coverage": 1.0,
                 "sample_size": sample_size}
    return OmegaConf.create({"seed": 7, "tokenizer": tokenizer, "data": {
        "source": "hub", "name": "toy", "config": None, "src_lang": "xx", "tgt_lang": "yy",
        "splits": {"train": "train", "val": "validation"}, "streaming": streaming, "cache": False,
        "max_len": None, "max_train_examples": None}})


def test_hub_stream_is_read_once_and_gives_every_pair(monkeypatch):
    pairs = list(zip(toy_lines(250, 1), toy_lines(250, 2), strict=True))
    streams, calls = {}, []

    def fake_load_dataset(name, config, split, streaming=False):
        calls.append((split, streaming))
        stream = CountingStream(pairs if split == "train" else pairs[:10])
        streams[split] = stream
        return stream.dataset

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    monkeypatch.setattr(pipeline, "ENCODE_CHUNK", 30)
    data = prepare_data(hub_cfg(sample_size=100, streaming=True))
    assert ("train", True) in calls and streams["train"].passes == 1
    assert data.stats["train"].read == data.stats["train"].kept == len(data.train_src_ids) == 250
    assert data.tokenizers.src.decode([data.train_src_ids[249].tolist()]) == [pairs[249][0]]


def test_a_hub_stream_trains_sentencepiece_on_exactly_its_first_sample_size_pairs(monkeypatch):
    """The head of the stream is the sample, cut at tokenizer.sample_size pairs even inside a chunk."""
    pairs = list(zip(toy_lines(250, 1), toy_lines(250, 2), strict=True))
    monkeypatch.setattr(datasets, "load_dataset", lambda name, config, split, streaming=False:
                        CountingStream(pairs if split == "train" else pairs[:10]).dataset)
    monkeypatch.setattr(pipeline, "ENCODE_CHUNK", 30)  # 100 pairs end inside the fourth chunk
    seen = sentencepiece_samples(monkeypatch)
    prepare_data(hub_cfg(sample_size=100, streaming=True))
    assert seen == [[src for src, _ in pairs[:100]]]
    with pytest.raises(ConfigError, match="tokenizer.sample_size must be a positive number"):
        prepare_data(hub_cfg(sample_size=0, streaming=True))
