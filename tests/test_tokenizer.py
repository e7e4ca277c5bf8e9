"""SentencePiece wrapper: fixed special ids, lossless round trips, joint vs separate models."""

from __future__ import annotations

import io
import random
import re

import pytest
import torch

from nmt.data.tokenizer import BOS, EOS, PAD, UNK, SubwordTokenizer, Tokenizers
from nmt.errors import CheckpointError, ConfigError, DataError

DE_WORDS = (
    "ein eine der die das hund katze mann frau kind junge mädchen läuft springt sitzt steht spielt "
    "wirft fährt auf im am neben vor hinter park straße wasser strand ball fahrrad großer kleiner "
    "roten blauen weißen schwarzen"
).split()
EN_WORDS = (
    "a an the dog cat man woman child boy girl runs jumps sits stands plays throws rides on in at "
    "next to before behind park street water beach ball bicycle big small red blue white black"
).split()


def sentences(words: list[str], n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choices(words, k=rng.randint(3, 9))).capitalize() + "." for _ in range(n)]


DE = sentences(DE_WORDS, 300, seed=1)
EN = sentences(EN_WORDS, 300, seed=2)
TOK_CFG = {"type": "unigram", "joint": True, "vocab_size": 120, "character_coverage": 1.0, "sample_size": 0}


@pytest.fixture(scope="module")
def de_tok() -> SubwordTokenizer:
    return SubwordTokenizer.train(DE, vocab_size=100, seed=0)


def test_special_ids_are_fixed(de_tok):
    assert (PAD, UNK, BOS, EOS) == (0, 1, 2, 3)
    assert de_tok.ids_to_pieces([PAD, UNK, BOS, EOS]) == ["<pad>", "<unk>", "<s>", "</s>"]


@pytest.mark.parametrize("model_type", ["unigram", "bpe"])
def test_encode_decode_round_trip(model_type):
    tok = SubwordTokenizer.train(DE, model_type=model_type, vocab_size=100, seed=0)
    assert tok.vocab_size == 100
    ids = tok.encode(DE[:20])
    assert all(PAD not in s and BOS not in s and EOS not in s for s in ids)  # collate adds specials
    assert tok.decode(ids) == DE[:20]


def test_decode_skips_pad_bos_eos(de_tok):
    ids = de_tok.encode([DE[0]])[0]
    assert de_tok.decode([[BOS, *ids, EOS, PAD, PAD]]) == [DE[0]]


def test_unknown_characters_map_to_unk(de_tok):
    assert UNK in de_tok.encode(["Ω"])[0]


def test_pieces_round_trip(de_tok):
    pieces = de_tok.pieces(DE[3])
    assert len(pieces) == len(de_tok.encode([DE[3]])[0])
    assert de_tok.decode_pieces(pieces) == DE[3]


def test_bytes_round_trip_gives_the_same_model(de_tok):
    copy = SubwordTokenizer.from_bytes(de_tok.to_bytes())
    assert copy.vocab_size == de_tok.vocab_size
    assert copy.encode(DE[:50]) == de_tok.encode(DE[:50])


def test_same_seed_same_model():
    first = SubwordTokenizer.train(DE, vocab_size=80, input_sentence_size=100, seed=5)
    again = SubwordTokenizer.train(DE, vocab_size=80, input_sentence_size=100, seed=5)
    assert first.to_bytes() == again.to_bytes()


def test_vocab_size_too_large_is_a_config_error_with_a_hint():
    with pytest.raises(ConfigError, match=r"tokenizer.vocab_size=5000 is too large .*at most \d+"):
        SubwordTokenizer.train(DE, vocab_size=5000, seed=0)


def test_vocab_size_below_the_corpus_characters_is_a_config_error_naming_the_minimum():
    with pytest.raises(ConfigError, match=r"tokenizer.vocab_size=10 is too small .*needs at least (\d+) at "
                                          r"tokenizer.character_coverage=1.0") as error:
        SubwordTokenizer.train(DE, vocab_size=10, seed=0)
    minimum = int(re.search(r"at least (\d+)", str(error.value)).group(1))
    assert SubwordTokenizer.train(DE, vocab_size=minimum, seed=0).vocab_size == minimum


def test_bad_options_are_config_errors():
    with pytest.raises(ConfigError, match="valid: unigram, bpe"):
        SubwordTokenizer.train(DE, model_type="word", vocab_size=100)
    with pytest.raises(ConfigError, match="vocab_size"):
        SubwordTokenizer.train(DE, vocab_size=4)
    with pytest.raises(DataError, match="no non-empty training sentences"):
        SubwordTokenizer.train(["", ""], vocab_size=100)


def test_joint_tokenizers_share_one_model_for_both_languages():
    toks = Tokenizers.train_from_config(TOK_CFG, DE, EN, seed=0)
    assert toks.joint and toks.src is toks.tgt
    assert toks.tgt.decode(toks.tgt.encode(EN[:10])) == EN[:10]
    assert toks.src.decode(toks.src.encode(DE[:10])) == DE[:10]
    assert list(toks.model_files()) == ["spm.model"]


def test_separate_tokenizers_are_trained_per_side():
    toks = Tokenizers.train_from_config({**TOK_CFG, "joint": False, "vocab_size": 80}, DE, EN, seed=0)
    assert not toks.joint and toks.src.to_bytes() != toks.tgt.to_bytes()
    assert "ä" in "".join(toks.src.ids_to_pieces(range(toks.src.vocab_size)))
    assert "ä" not in "".join(toks.tgt.ids_to_pieces(range(toks.tgt.vocab_size)))
    assert sorted(toks.model_files()) == ["spm.src.model", "spm.tgt.model"]


@pytest.mark.parametrize("joint", [True, False])
def test_to_dict_survives_a_weights_only_checkpoint(joint, tmp_path):
    toks = Tokenizers.train_from_config({**TOK_CFG, "joint": joint, "vocab_size": 80}, DE, EN, seed=0)
    buffer = io.BytesIO()
    torch.save({"tokenizers": toks.to_dict()}, buffer)
    buffer.seek(0)
    restored = Tokenizers.from_dict(torch.load(buffer, weights_only=True)["tokenizers"])
    assert restored.joint == joint and (restored.src is restored.tgt) == joint
    assert restored.src.encode(DE[:5]) == toks.src.encode(DE[:5])
    assert restored.tgt.encode(EN[:5]) == toks.tgt.encode(EN[:5])
    saved = toks.save(tmp_path / "run")
    assert [p.read_bytes() for p in saved] == list(toks.model_files().values())


def test_from_dict_rejects_a_broken_state():
    with pytest.raises(CheckpointError, match="tokenizer"):
        Tokenizers.from_dict({"joint": False, "src": b"not a model"})
