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
from nmt.inference.prefix import Spelling

WORD_START = "\u2581"  # SentencePiece's mark for a piece that begins a word (▁)


@dataclass
class PrefixPlan:
    """Per text: the forced subword ids, whether they end with a whole word, and the characters the
    next subwords must spell (None for none); `word_starts` (V,) bool where a prefix ends a word."""

    ids: list[list[int]]
    ends_word: list[bool]
    spellings: list[Spelling | None]
    word_starts: torch.Tensor | None


def plan_prefixes(prefixes: Sequence[str], tgt: SubwordTokenizer) -> PrefixPlan:
    """The search rules for each typed prefix (see the module doc)."""
    pieces: list[str] = []  # the vocabulary's texts, read once and only if a word is being typed
    ids, ends_word, spellings = [], [], []
    for text in prefixes:
        words = text.split()
        whole_word = bool(words) and text != text.rstrip()
        spelling = None
        if words and not whole_word:
            pieces = pieces or piece_texts(tgt)
            spelling = spelling_of(words[-1], tgt, pieces)
        if spelling is None:  # no prefix, whole words, or a last word that cannot be spelled: forced
            ids.append(tgt.encode([text.strip()])[0] if words else [])
        else:
            ids.append(tgt.encode([" ".join(words[:-1])])[0] if len(words) > 1 else [])
        ends_word.append(whole_word)
        spellings.append(spelling)
    return PrefixPlan(ids, ends_word, spellings, word_starts(tgt) if any(ends_word) else None)


def spelling_of(word: str, tgt: SubwordTokenizer, pieces: list[str]) -> Spelling | None:
    """What the subwords after the whole words must spell for a partly typed `word`: its pieces'
    characters, "▁" first; None when the vocabulary lacks one of its characters (UNK)."""
    word_ids = tgt.encode([word])[0]
    if UNK in word_ids:
        return None
    try:
        return Spelling.of("".join(pieces[i] for i in word_ids), pieces)
    except ValueError:  # the tokenizer's own pieces spell it, so this is not expected
        return None


def piece_texts(tgt: SubwordTokenizer) -> list[str]:
    """Each target subword's text, "" for the special ones (pad, UNK, BOS, EOS): they spell nothing."""
    pieces = tgt.ids_to_pieces(range(tgt.vocab_size))
    return ["" if i in SPECIAL_IDS or i == UNK else piece for i, piece in enumerate(pieces)]


def word_starts(tgt: SubwordTokenizer) -> torch.Tensor:
    """(V,) bool: the target subwords that begin a word (SentencePiece marks them with ▁), and EOS."""
    starts = [piece.startswith(WORD_START) for piece in tgt.ids_to_pieces(range(tgt.vocab_size))]
    starts[EOS] = True
    return torch.tensor(starts, dtype=torch.bool)
