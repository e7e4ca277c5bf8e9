"""Subword regularization: each epoch's sampled segmentation of real Multi30k sentences."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from nmt.data.storage import RaggedIds
from nmt.data.subword_sampling import SubwordSampling
from nmt.data.tokenizer import SubwordTokenizer, Tokenizers
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
