"""From prefix text, as a user types it, to the rules search follows (nmt.inference.prefix).

- "" or blanks: no prefix.
- Ends with a space ("The dog "): every word is whole. The text's subwords are forced and the next
  subword must start a new word (or the translation ends).
- Otherwise ("The do"): the words before the last are whole and forced; the last one is still being
  typed, so the next subwords must spell it and may complete it ("The dog", "The door"), as in
  interactive translation prediction. If the last word holds a character the vocabulary lacks, its
  subwords (with UNK) are forced instead, since no subwords can spell it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from nmt.data.tokenizer import EOS, SPECIAL_IDS, UNK, SubwordTokenizer
from nmt.inference.prefix import PieceIndex, Spelling

WORD_START = "\u2581"  # SentencePiece's mark for a piece that begins a word (▁)


@dataclass
class PrefixPlan:
    """Per text: the forced subword ids, whether they end with a whole word, and the characters the
    next subwords must spell (None for none); `word_starts` (V,) bool where a prefix ends a word."""

    ids: list[list[int]]
    ends_word: list[bool]
    spellings: list[Spelling | None]
    word_starts: torch.Tensor | None


@dataclass(frozen=True)
class TargetVocabulary:
    """What typed prefixes need from the target vocabulary, read once per tokenizer (the Translator
    keeps it): each subword's text ("" for pad, UNK, BOS and EOS: they spell nothing), those texts
    indexed for spelling, and which subwords begin a word."""

    pieces: list[str]
    index: PieceIndex
    word_starts: torch.Tensor  # (V,) bool: ▁ pieces, and EOS

    @classmethod
    def of(cls, tgt: SubwordTokenizer) -> TargetVocabulary:
        raw = tgt.ids_to_pieces(range(tgt.vocab_size))
        pieces = ["" if i in SPECIAL_IDS or i == UNK else piece for i, piece in enumerate(raw)]
        starts = [piece.startswith(WORD_START) for piece in raw]
        starts[EOS] = True
        return cls(pieces, PieceIndex(pieces), torch.tensor(starts, dtype=torch.bool))


def plan_prefixes(prefixes: Sequence[str], tgt: SubwordTokenizer, vocab: TargetVocabulary) -> PrefixPlan:
    """The search rules for each typed prefix (see the module doc). SentencePiece is called twice for
    the whole batch, not per prefix: a call costs far more than the few words it encodes."""
    words = [text.split() for text in prefixes]
    whole_word = [bool(w) and text != text.rstrip() for w, text in zip(words, prefixes, strict=True)]
    typing = [i for i, w in enumerate(words) if w and not whole_word[i]]  # prefixes with a partly typed word
    spellings: list[Spelling | None] = [None] * len(prefixes)
    for i, word_ids in zip(typing, tgt.encode([words[i][-1] for i in typing]), strict=True):
        spellings[i] = spelling_of(word_ids, vocab)
    # Forced: all of the text, or, where the last word is spelled instead, the words before it.
    forced = [" ".join(w[:-1]) if spelling is not None else text.strip()
              for w, text, spelling in zip(words, prefixes, spellings, strict=True)]
    ids = tgt.encode(forced)
    return PrefixPlan(ids, whole_word, spellings, vocab.word_starts if any(whole_word) else None)


def spelling_of(word_ids: Sequence[int], vocab: TargetVocabulary) -> Spelling | None:
    """What the subwords after the whole words must spell for a partly typed word, given its subword
    ids: their pieces' characters, "▁" first; None when the vocabulary lacks one of its characters
    (UNK)."""
    if UNK in word_ids:
        return None
    try:
        return Spelling.of("".join(vocab.pieces[i] for i in word_ids), vocab.index)
    except ValueError:  # the tokenizer's own pieces spell it, so this is not expected
        return None
