"""Word alignments from attention, and their alignment error rate against gold links.

A link (i, j) joins source word i and target word j (0-based), as in the Pharaoh format "i-j".
Words are the whitespace tokens of the given (pre-tokenized) text. Each word is encoded on its own
and the pieces are concatenated, so every piece belongs to exactly one word by construction; with
SentencePiece's default whitespace splitting this is also the sentence's own encoding.

Attention alignment: force-decode the given target, merge the (pieces x pieces) attention into
(target words x source words) the way plots do (sum over a source word's pieces, mean over a target
word's pieces), drop </s>, and link every target word to the source word it attends to most.

The links of a translation the model produced (`nmt-translate alignment=true`) count the same words:
the whitespace tokens of the input line and of the printed translation. The model reads the line's
own encoding there, whose pieces are not always the words' ones (SentencePiece normalises before it
splits), so `sentence_word_pieces` finds which of its pieces each whitespace word holds.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nmt.data.batching import sort_by_length_batches
from nmt.data.readers import CONVERT_TO_UTF8, read_lines
from nmt.errors import DataError
from nmt.inference.batching import forced_decode_batch
from nmt.viz.attention_plot import as_weight_array
from nmt.viz.word_level import merge_groups

Link = tuple[int, int]  # (source word, target word)


# --- from attention to links ------------------------------------------------------------------------


def encode_words(tokenizer, words: Sequence[str]) -> tuple[list[int], list[list[int]]]:
    """Piece ids of the words, concatenated, and for each word the indices of its pieces.

    A word that encodes to nothing (e.g. only characters the normalizer removes) gets no pieces and
    an empty index list: it receives no attention and is never aligned.
    """
    ids: list[int] = []
    groups: list[list[int]] = []
    for word_ids in tokenizer.encode(list(words)) if words else []:
        groups.append(list(range(len(ids), len(ids) + len(word_ids))))
        ids.extend(word_ids)
    return ids, groups


def word_attention(translator, src_words: Sequence[Sequence[str]], tgt_words: Sequence[Sequence[str]],
                   *, batch_sentences: int = 64) -> list[np.ndarray | None]:
    """(target words, source words) attention of forced decoding, </s> row and column dropped, per
    sentence pair; None where either side is empty. Words without pieces get a zero row / column."""
    if len(src_words) != len(tgt_words):
        raise DataError(f"{len(src_words)} source sentences but {len(tgt_words)} target sentences")
    src = [encode_words(translator.tokenizers.src, words) for words in src_words]
    tgt = [encode_words(translator.tokenizers.tgt, words) for words in tgt_words]
    results: list[np.ndarray | None] = [None] * len(src)
    todo = [i for i in range(len(src)) if src[i][0] and tgt[i][0]]
    for batch_positions in sort_by_length_batches([len(src[i][0]) + 1 for i in todo], batch_sentences):
        indices = [todo[p] for p in batch_positions]
        hyps = forced_decode_batch(translator.model, [src[i][0] for i in indices], [tgt[i][0] for i in indices],
                                   device=translator.device, batch_sentences=batch_sentences, task="aligning")
        for i, hyp in zip(indices, hyps, strict=True):
            results[i] = _merge_words(hyp.attention.numpy(), src[i][1], tgt[i][1])
    return results


def _merge_words(weights, src_groups: list[list[int]], tgt_groups: list[list[int]]) -> np.ndarray:
    """(T + 1, S + 1) piece attention -> (target words, source words), given each word's pieces in
    order (a word may have none); the pieces after the last word's (</s>, and on the target side
    pieces that spell no word) are dropped. Words without pieces get a zero row / column."""
    weights = as_weight_array(weights)
    src_real = [g for g in src_groups if g]
    tgt_real = [g for g in tgt_groups if g]
    src_rest = list(range(len(_flat(src_groups)), weights.shape[1]))
    tgt_rest = list(range(len(_flat(tgt_groups)), weights.shape[0]))
    merged = merge_groups(weights, src_real + [src_rest] * bool(src_rest), tgt_real + [tgt_rest] * bool(tgt_rest))
    merged = merged[:len(tgt_real), :len(src_real)]  # (Tw, Sw)
    # Put the words that had no pieces back as zero rows / columns, so indices match the text.
    out = np.zeros((len(tgt_groups), len(src_groups)))
    out[np.ix_([j for j, g in enumerate(tgt_groups) if g], [i for i, g in enumerate(src_groups) if g])] = merged
    return out


def _flat(groups: list[list[int]]) -> list[int]:
    return [i for g in groups for i in g]


def argmax_links(weights) -> set[Link]:
    """(target words, source words) weights -> {(argmax source word, target word)}: one link per
    target word that attends to any source word at all."""
    weights = np.asarray(weights)
    if weights.size == 0:
        return set()
    best = weights.argmax(axis=1)  # (Tw,)
    return {(int(i), j) for j, i in enumerate(best) if weights[j, i] > 0}


def translation_links(translation, source: str, tokenizers) -> set[Link]:
    """The links of a translation the model produced (an `nmt.inference.translator.Translation` of
    the line `source`, with attention): source word i is the i-th whitespace token of `source`,
    target word j the j-th of the translation's text, as nmt-align counts them. Each target word is
    linked to the source word it attends to most; words without pieces get no links."""
    if translation.attention is None:
        return set()
    src_ids, src_groups = sentence_word_pieces(tokenizers.src, source)
    if len(src_ids) != len(translation.src_pieces) - 1:  # the pieces end with </s>
        raise ValueError(f"{source!r} encodes to {len(src_ids)} pieces, but the translation read "
                         f"{len(translation.src_pieces) - 1}: is it the translation of another line?")
    tgt_groups = printed_word_pieces(tokenizers.tgt, translation.tgt_pieces[:-1])
    return argmax_links(_merge_words(translation.attention, src_groups, tgt_groups))


def sentence_word_pieces(tokenizer, text: str) -> tuple[list[int], list[list[int]]]:
    """The piece ids of the text's own encoding (what the model reads: ``tokenizer.encode([text.strip()])``)
    and for each whitespace word of the text (``text.split()``) the indices of its pieces.

    SentencePiece normalises before it splits, so its words are not always these: a lone control
    character or zero-width space encodes to nothing, a zero-width space inside a word or a character
    NFKC spells with a space ("´" is " ́") splits a word in two, a control character between two words
    (which str.split splits on) can glue them. SentencePiece segments each of its words on its own, so
    the encoding of the text up to the end of word k begins with the pieces of words 0..k: the pieces
    it has beyond those of word k - 1 are word k's. A word that normalises away gets none; pieces that
    SentencePiece glues across words go to the last of them.
    """
    text = text.strip()
    [ids] = tokenizer.encode([text])
    ends = _word_ends(text)
    # Pieces of words 0..k, for every word but the last (whose encoding is the whole text's).
    covered = [_common_start(prefix, ids) for prefix in tokenizer.encode([text[:end] for end in ends[:-1]])]
    groups, start = [], 0
    for end in [*covered, len(ids)][:len(ends)]:
        end = max(end, start)
        groups.append(list(range(start, end)))
        start = end
    return ids, groups


def _word_ends(text: str) -> list[int]:
    """Where each word of text.split() ends in text (str.split's whitespace, so the same words)."""
    ends, position = [], 0
    for word in text.split():
        position = text.index(word, position) + len(word)
        ends.append(position)
    return ends


def _common_start(a: list[int], b: list[int]) -> int:
    """How many items a and b share at their start."""
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def printed_word_pieces(tokenizer, pieces: list[str]) -> list[list[int]]:
    """For each whitespace word of the text the pieces decode to (as nmt-translate prints it), the
    indices of the pieces that spell it. A piece belongs to the word its decoding adds characters
    to; one that adds only a space (a lone "▁" before a digit or bracket) or nothing belongs to the
    word the next piece adds to, or to none at the end. "<unk>" is printed " ⁇ ", a word of its own.
    """
    groups: list[list[int]] = []
    waiting: list[int] = []  # pieces that have shown nothing yet
    shown = ""
    for k in range(len(pieces)):
        text = tokenizer.decode_pieces(pieces[: k + 1]).rstrip()
        waiting.append(k)
        if text == shown:
            continue
        words = len(text.split())
        groups.extend([] for _ in range(words - len(groups)))
        groups[words - 1].extend(waiting)
        waiting, shown = [], text
    return groups


def diagonal_links(n_src: int, n_tgt: int) -> set[Link]:
    """The baseline that ignores the words: target word j of J links to source word
    floor((j + 0.5) * I / J) of I, the source position at the same relative place."""
    if n_src == 0 or n_tgt == 0:
        return set()
    return {(min(int((j + 0.5) * n_src / n_tgt), n_src - 1), j) for j in range(n_tgt)}


def flip(links: set[Link]) -> set[Link]:
    """Links of a target->source model as (source, target) links."""
    return {(i, j) for j, i in links}


# --- Pharaoh text and gold links --------------------------------------------------------------------


def format_pharaoh(links: set[Link]) -> str:
    return " ".join(f"{i}-{j}" for i, j in sorted(links))


@dataclass
class GoldAlignment:
    sure: set[Link]
    possible: set[Link]  # always includes the sure links


_NUMBERED = re.compile(r"\s*\d+\s+\d+\s+\d+(\s+[SP])?\s*")
_LIKE_NUMBERED = re.compile(r"\s*\d+\s+\d+\s+\d+(\s+\S+)*\s*")  # the format, even with a bad field
_PHARAOH_LINK = re.compile(r"(\d+)([-p?])(\d+)")


def read_gold(path: str | Path, n_sentences: int) -> list[GoldAlignment]:
    """Gold links for n_sentences sentence pairs, in either of two formats (detected):

    - one link a line, `sentence src_index tgt_index [S|P]`, with 1-based sentence numbers and
      0-based indices (the format of the deen-europarl gold set); a missing S/P means S;
    - one sentence a line of Pharaoh links, `i-j` sure and `i?j` or `ipj` possible.

    Gold that scores nothing is a DataError: no sure link at all (recall and AER would be nan or
    100), or links that stop before the last sentence. In the one-link-a-line format a sentence
    without links has no line, so a sentence in between may have none; but a file cut short (the
    gold of the first 51 of 100 sentences) looks the same from its end, and would be scored as if
    the rest had no links. Gold whose last sentences truly have none is written in the Pharaoh format.
    """
    lines = read_lines(path, hint=CONVERT_TO_UTF8)
    first = next((line for line in lines if line.strip()), "")
    read = _read_numbered if _LIKE_NUMBERED.fullmatch(first) else _read_pharaoh
    gold = read(path, lines, n_sentences)
    if not any(g.sure for g in gold):
        raise DataError(f"{path} holds no sure links (`i-j`, or S in `sentence src tgt S`): recall and AER "
                        "count them; is it a gold alignment?")
    return gold


def _read_numbered(path: str | Path, lines: list[str], n_sentences: int) -> list[GoldAlignment]:
    gold = [GoldAlignment(set(), set()) for _ in range(n_sentences)]
    last = 0
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        fields = line.split()
        if not _NUMBERED.fullmatch(line):
            raise DataError(f"{path}:{number}: expected `sentence src tgt [S|P]`, got {line!r}")
        sentence, link = int(fields[0]), (int(fields[1]), int(fields[2]))
        if not 1 <= sentence <= n_sentences:
            raise DataError(f"{path}:{number}: sentence {sentence} is outside 1..{n_sentences}")
        _add(gold[sentence - 1], link, sure=len(fields) == 3 or fields[3] == "S")
        last = max(last, sentence)
    if last < n_sentences:
        raise DataError(f"{path} has links for sentences 1..{last} only, but there are {n_sentences} sentence "
                        "pairs: the gold must reach the last sentence (is it cut short, or another set's?); if "
                        "the last ones truly have no links, write it one sentence a line (`i-j`), where an empty "
                        "line is a sentence without links")
    return gold


def _read_pharaoh(path: str | Path, lines: list[str], n_sentences: int) -> list[GoldAlignment]:
    gold = [GoldAlignment(set(), set()) for _ in range(n_sentences)]
    if len(lines) != n_sentences:
        raise DataError(f"{path} has {len(lines)} lines of links but there are {n_sentences} sentence pairs")
    for number, line in enumerate(lines, 1):
        for token in line.split():
            match = _PHARAOH_LINK.fullmatch(token)
            if match is None:
                raise DataError(f"{path}:{number}: {token!r} is not a link like 3-4 (sure) or 3?4 (possible)")
            _add(gold[number - 1], (int(match[1]), int(match[3])), sure=match[2] == "-")
    return gold


def _add(gold: GoldAlignment, link: Link, sure: bool) -> None:
    gold.possible.add(link)
    if sure:
        gold.sure.add(link)


def drop_links_outside(gold: list[GoldAlignment], src_lengths: list[int], tgt_lengths: list[int],
                       path, max_share: float = 0.1) -> list[str]:
    """Removes gold links beyond a sentence's words and returns a description of each.

    Published gold sets have the odd typo (deen-europarl-100 links word 16 of a 13-word sentence),
    which should not stop an evaluation; but when more than ``max_share`` of the links fall
    outside, the files do not belong together (or were tokenized differently) and that is an error.
    """
    dropped, total = [], 0
    for k, (g, n_src, n_tgt) in enumerate(zip(gold, src_lengths, tgt_lengths, strict=True), 1):
        total += len(g.possible)
        bad = {link for link in g.possible if link[0] >= n_src or link[1] >= n_tgt}
        g.sure -= bad
        g.possible -= bad
        dropped += [f"sentence {k}: {i}-{j} (only {n_src} source and {n_tgt} target words)" for i, j in sorted(bad)]
    if dropped and len(dropped) > max_share * total:
        raise DataError(f"{path}: {len(dropped)} of {total} gold links lie beyond their sentence's words, "
                        f"e.g. {dropped[0]}; are these the texts the gold alignment was made on?")
    return dropped


# --- scores -----------------------------------------------------------------------------------------


@dataclass
class AlignmentScores:
    precision: float  # |A ∩ P| / |A|
    recall: float     # |A ∩ S| / |S|
    aer: float        # 1 - (|A ∩ S| + |A ∩ P|) / (|A| + |S|)
    links: int        # |A|
    sure: int         # |S|
    possible: int     # |P|

    def as_dict(self) -> dict:
        return {"precision": self.precision, "recall": self.recall, "aer": self.aer, "links": self.links,
                "sure": self.sure, "possible": self.possible}


def alignment_scores(predicted: Sequence[set[Link]], gold: Sequence[GoldAlignment]) -> AlignmentScores:
    """Corpus precision, recall and alignment error rate (Och & Ney 2003): counts are summed over all
    sentences before dividing. Possible links P include the sure ones S."""
    if len(predicted) != len(gold):
        raise ValueError(f"{len(predicted)} predicted alignments for {len(gold)} gold ones")
    a = s = p = a_s = a_p = 0
    for links, g in zip(predicted, gold, strict=True):
        possible = g.possible | g.sure
        a, s, p = a + len(links), s + len(g.sure), p + len(possible)
        a_s, a_p = a_s + len(links & g.sure), a_p + len(links & possible)
    nan = float("nan")
    return AlignmentScores(precision=a_p / a if a else nan, recall=a_s / s if s else nan,
                           aer=1.0 - (a_s + a_p) / (a + s) if a + s else nan, links=a, sure=s, possible=p)


def format_scores(scores: AlignmentScores) -> str:
    return (f"precision {100 * scores.precision:.1f} | recall {100 * scores.recall:.1f} | "
            f"AER {100 * scores.aer:.1f} ({scores.links} links, {scores.sure} sure, {scores.possible} possible)")
