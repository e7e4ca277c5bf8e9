"""Turn attention over SentencePiece pieces into attention over words.

SentencePiece marks the start of a word with "▁" (U+2581): ``["▁Ein", "▁Hund", "e", "▁läuft"]`` is
the three words "Ein Hunde läuft". Plotting one row and column per word is easier to read than one
per piece, and it is how people judge an alignment.
"""

from __future__ import annotations

import re

import numpy as np

from nmt.viz.attention_plot import as_weight_array, weights_for

WORD_START = "\u2581"  # "▁"

# Control and user-defined symbols such as "</s>", "<unk>", "<pad>": never part of a word.
_SPECIAL = re.compile(r"^<[^<>\s]+>$")


def is_special(piece: str) -> bool:
    return bool(_SPECIAL.match(piece))


def group_pieces(pieces: list[str]) -> list[list[int]]:
    """Group piece indices into words; the groups are contiguous and cover every index in order.

    A piece starting with "▁" opens a new word and pieces without it continue the current one. A lone
    "▁" (SentencePiece emits it before pieces that have no "▁"-variant, e.g. digits or brackets)
    opens a word that the following piece joins. A special token such as "</s>" is a word of its
    own, and the piece after it opens a new word even without "▁".
    """
    groups: list[list[int]] = []
    can_continue = False  # whether the next plain piece may join the last group
    after_lone_mark = False  # the last piece was a lone "▁": the next piece joins it regardless
    for i, piece in enumerate(pieces):
        if is_special(piece):
            groups.append([i])
            can_continue = after_lone_mark = False
            continue
        starts_word = piece.startswith(WORD_START) and not after_lone_mark
        if starts_word or not can_continue:
            groups.append([i])
        else:
            groups[-1].append(i)
        can_continue = True
        after_lone_mark = piece == WORD_START
    return groups


def words_from_pieces(pieces: list[str]) -> list[str]:
    """The words the pieces spell, without the "▁" marks; special tokens stay as they are."""
    words = []
    for group in group_pieces(pieces):
        text = "".join(pieces[i] for i in group).replace(WORD_START, "")
        words.append(text or WORD_START)  # a stray lone "▁" keeps a visible label
    return words


def merge_to_words(
    weights, src_pieces: list[str], tgt_pieces: list[str]
) -> tuple[np.ndarray, list[str], list[str]]:
    """Merge (T, S) piece-level attention into (Tw, Sw) word-level attention.

    Source columns of one word are SUMMED: the attention a target position pays to a word is the
    total it pays to that word's pieces, so each row is still a distribution over the source (sums
    to 1 if it did before). Target rows of one word are AVERAGED: each piece of a target word made
    its own full distribution over the source, and their mean is again a distribution, whereas a
    sum would give long words rows that sum to their piece count.

    Returns:
        (weights_w, src_words, tgt_words) with weights_w of shape (len(tgt_words), len(src_words)).
    """
    weights = weights_for(weights, tgt_pieces, src_pieces, "pieces")
    merged = merge_groups(weights, group_pieces(src_pieces), group_pieces(tgt_pieces))
    return merged, words_from_pieces(src_pieces), words_from_pieces(tgt_pieces)


def merge_groups(weights, src_groups: list[list[int]], tgt_groups: list[list[int]]) -> np.ndarray:
    """Merge (T, S) attention over contiguous index groups into (len(tgt_groups), len(src_groups)):
    columns of a source group are summed, rows of a target group averaged (see ``merge_to_words``).

    The groups must be non-empty, contiguous, in order and cover every row / column; callers that
    know the words some other way than by "▁" marks (e.g. alignment on pre-tokenized text) build
    them themselves.
    """
    weights = as_weight_array(weights)
    if not src_groups or not tgt_groups:
        raise ValueError("cannot merge attention over an empty source or target")
    for groups, size, side in ((src_groups, weights.shape[1], "source"), (tgt_groups, weights.shape[0], "target")):
        if [i for g in groups for i in g] != list(range(size)):
            raise ValueError(f"the {side} groups must cover indices 0..{size - 1} contiguously and in order")
    # The groups are contiguous, so reduceat over their start indices sums each group's block.
    src_starts = [g[0] for g in src_groups]
    tgt_starts = [g[0] for g in tgt_groups]
    tgt_sizes = np.array([len(g) for g in tgt_groups], dtype=weights.dtype)
    per_src_word = np.add.reduceat(weights, src_starts, axis=1)  # (T, Sw)
    return np.add.reduceat(per_src_word, tgt_starts, axis=0) / tgt_sizes[:, None]  # (Tw, Sw)
