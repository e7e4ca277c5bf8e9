"""Subword regularization: each epoch's sampled segmentation of real Multi30k sentences."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from nmt.data import subword_sampling
from nmt.data.storage import RaggedIds
from nmt.data.subword_sampling import SubwordSampling
from nmt.data.tokenizer import UNK, SubwordTokenizer, Tokenizers
from nmt.errors import ConfigError

N_PAIRS = 2_000


def read_lines(multi30k_root, lang: str) -> list[str]:
    with gzip.open(multi30k_root / "multi30k" / f"train.{lang}.gz", "rt", encoding="utf-8") as f:
        return [next(f).strip() for _ in range(N_PAIRS)]


@pytest.fixture(scope="module", params=["unigram", "bpe"])
def prepared(request, multi30k_root) -> dict:
    """A joint tokenizer of the given type and the deterministic ids of 2,000 Multi30k pairs."""
    de, en = read_lines(multi30k_root, "de"), read_lines(multi30k_root, "en")
    tokenizer = SubwordTokenizer.train([*de, *en], vocab_size=1_000, model_type=request.param, seed=3)
    tokenizers = Tokenizers(tokenizer, tokenizer, joint=True)
    return {"type": request.param, "tokenizers": tokenizers, "src": RaggedIds.from_lists(tokenizer.encode(de)), "tgt": RaggedIds.from_lists(tokenizer.encode(en))}


def test_off_unless_alpha_is_set():
    assert SubwordSampling.from_config({"subword_alpha": 0.0, "subword_nbest": 64}) is None
    assert SubwordSampling.from_config({}) is None  # configs written before the option existed
    assert SubwordSampling.from_config({"subword_alpha": 0.1, "subword_nbest": -1}) == SubwordSampling(0.1, -1)


@pytest.mark.parametrize(("option", "value"), [
    ("subword_alpha", -0.1), ("subword_alpha", 1.5), ("subword_alpha", "much"), ("subword_alpha", True),
    ("subword_nbest", 0), ("subword_nbest", 1), ("subword_nbest", 2.5), ("subword_nbest", -2),
])
def test_bad_settings_name_the_option(option, value):
    settings = {"subword_alpha": 0.1, "subword_nbest": 64, option: value}
    with pytest.raises(ConfigError, match=rf"^tokenizer\.{option} must be .*; got {value!r}$"):
        SubwordSampling.from_config(settings)


def test_an_epochs_sample_is_reproducible_and_the_next_epochs_differs(prepared):
    sampling, args = SubwordSampling(0.1, 64), (prepared["tokenizers"], prepared["src"], prepared["tgt"])
    src, tgt = sampling.resegment(*args, seed=5, epoch=0)
    again_src, again_tgt = sampling.resegment(*args, seed=5, epoch=0)
    assert src == again_src and tgt == again_tgt
    next_src, next_tgt = sampling.resegment(*args, seed=5, epoch=1)
    assert src != next_src and tgt != next_tgt
    other_seed_src, _ = sampling.resegment(*args, seed=6, epoch=0)
    assert src != other_seed_src


def test_sampled_pieces_spell_the_same_sentences_in_more_pieces(prepared):
    tokenizer, prepared_src = prepared["tokenizers"].src, prepared["src"]
    src, tgt = SubwordSampling(0.1, 64).resegment(prepared["tokenizers"], prepared_src, prepared["tgt"], 0, 0)
    assert len(src) == len(prepared_src) == N_PAIRS and len(tgt) == N_PAIRS
    assert tokenizer.decode(list(src)) == tokenizer.decode(list(prepared_src))
    changed = sum(not np.array_equal(a, b) for a, b in zip(src, prepared_src, strict=True))
    assert changed > N_PAIRS // 2  # most sentences get another segmentation ...
    assert len(src.flat) > len(prepared_src.flat)  # ... which has more pieces than the most likely one
    assert 1 <= src.flat.min() and src.flat.max() < tokenizer.vocab_size  # (never PAD, BOS or EOS)


def test_alpha_sets_how_far_the_samples_stray(prepared):
    """Unigram: alpha sharpens the distribution (closer to the best segmentation); BPE: alpha is the
    probability of dropping a merge (more pieces)."""
    tokenizers, src, tgt = prepared["tokenizers"], prepared["src"], prepared["tgt"]
    growth = [len(SubwordSampling(alpha, 64).resegment(tokenizers, src, tgt, 0, 0)[0].flat) / len(src.flat)
              for alpha in (0.05, 0.3, 0.9)]
    if prepared["type"] == "unigram":
        assert growth[0] > growth[1] > growth[2] >= 1.0
    else:
        assert 1.0 < growth[0] < growth[1] < growth[2]


def with_unk(ids: RaggedIds, rows: list[int]) -> RaggedIds:
    """``ids`` with the first piece of each sentence in ``rows`` replaced by UNK."""
    seqs = [list(map(int, s)) for s in ids]
    for i in rows:
        seqs[i][0] = UNK
    return RaggedIds.from_lists(seqs)


def test_pairs_holding_an_unknown_piece_keep_their_prepared_ids(prepared):
    """Decoding turns UNK into " ⁇ ", which would be sampled back as other text: such a pair (both
    sides) keeps its prepared ids; every other pair is still sampled as before."""
    tokenizers, sampling = prepared["tokenizers"], SubwordSampling(0.1, 64)
    src, tgt = with_unk(prepared["src"], [3, 50]), with_unk(prepared["tgt"], [50, 700])
    new_src, new_tgt = sampling.resegment(tokenizers, src, tgt, seed=0, epoch=0)
    for i in (3, 50, 700):
        assert new_src[i].tolist() == src[i].tolist() and new_tgt[i].tolist() == tgt[i].tolist()
    assert tokenizers.src.decode(list(new_src)) == tokenizers.src.decode(list(src))
    assert tokenizers.tgt.decode(list(new_tgt)) == tokenizers.tgt.decode(list(tgt))
    changed = sum(not np.array_equal(a, b) for a, b in zip(new_src, src, strict=True))
    assert changed > N_PAIRS // 2


def test_pairs_whose_sample_exceeds_max_len_keep_their_prepared_ids(prepared):
    """data.max_len holds for sampled pairs too: a pair whose sample has a side over it gets its
    prepared ids back (within max_len), and a pair within it keeps the very same sample."""
    tokenizers, sampling, max_len = prepared["tokenizers"], SubwordSampling(0.1, 64), 24
    keep = [i for i in range(N_PAIRS) if max(len(prepared["src"][i]), len(prepared["tgt"][i])) <= max_len]
    src, tgt = (RaggedIds.from_lists([prepared[side][i].tolist() for i in keep]) for side in ("src", "tgt"))
    free_src, free_tgt = sampling.resegment(tokenizers, src, tgt, seed=1, epoch=2)
    new_src, new_tgt = sampling.resegment(tokenizers, src, tgt, seed=1, epoch=2, max_len=max_len)
    assert len(new_src) == len(new_tgt) == len(keep) > N_PAIRS // 3
    assert new_src.lengths().max() <= max_len and new_tgt.lengths().max() <= max_len
    over = (free_src.lengths() > max_len) | (free_tgt.lengths() > max_len)  # (N,)
    assert 0 < over.sum() < len(keep)  # some pairs fall back, not all
    for i in range(len(keep)):
        expected = (src[i], tgt[i]) if over[i] else (free_src[i], free_tgt[i])
        assert new_src[i].tolist() == expected[0].tolist() and new_tgt[i].tolist() == expected[1].tolist()


def test_a_corpus_of_several_chunks_is_sampled_sentence_for_sentence(prepared, monkeypatch):
    """The sampling goes CHUNK sentences at a time (Multi30k's 29,000 pairs take three chunks): in
    every chunk each sentence keeps its text, and the pairs with an unknown piece keep their ids."""
    monkeypatch.setattr(subword_sampling, "CHUNK", 300)
    tokenizers, unknown = prepared["tokenizers"], (3, 650, 1200, 1999)
    src, tgt = with_unk(prepared["src"], [3, 650, 1999]), with_unk(prepared["tgt"], [1200])
    new_src, new_tgt = SubwordSampling(0.1, 64).resegment(tokenizers, src, tgt, seed=0, epoch=0)
    assert len(new_src) == len(new_tgt) == N_PAIRS
    for i in unknown:
        assert new_src[i].tolist() == src[i].tolist() and new_tgt[i].tolist() == tgt[i].tolist()
    assert tokenizers.src.decode(list(new_src)) == tokenizers.src.decode(list(src))
    assert tokenizers.tgt.decode(list(new_tgt)) == tokenizers.tgt.decode(list(tgt))
    last_chunk = range(1800, N_PAIRS - 1)
    assert sum(not np.array_equal(new_src[i], src[i]) for i in last_chunk) > len(last_chunk) // 2
