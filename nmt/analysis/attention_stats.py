"""Summary statistics of attention weights: how peaked, how complete, how monotonic.

Every function here is pure and works on one (T, S) matrix whose row t is the distribution target
position t puts over the S source positions. ``corpus_statistics`` merges SentencePiece pieces into
words first (``nmt.viz.word_level``) and averages over a test set:

- entropy: mean over target rows of -sum_s a_ts ln a_ts, in nats (0: every row on one source
  word; ln S: uniform). Rows are the full distributions, the source </s> column included.
- coverage: the total attention a source word receives, summed over all target rows (the
  "fertility" the model gives it). A word under 0.5 was hardly looked at. Special tokens are not
  words and are left out: the source </s>, and <unk>, which also splits the word it stands in
  ("19<unk>4" is "19", "<unk>", "4"; nmt.viz.word_level). Multi30k's default vocabulary has none. Reported per test set as the mean over sentences of the least and the most
  covered word, and the share of all source words below the threshold.
- diagonal distance: both axes scaled to [0, 1] (position p of n at (p + 0.5) / n), the expected
  |source position - target position| under each row, averaged over rows. 0 for a monotonic
  one-to-one alignment of equal lengths; large for reordering or attention parked on one word.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass

import numpy as np

from nmt.viz.attention_plot import as_weight_array
from nmt.viz.word_level import is_special, merge_to_words

LOW_COVERAGE = 0.5


def row_entropy(weights) -> np.ndarray:
    """(T, S) -> (T,) entropy of each row in nats, with 0 ln 0 = 0."""
    w = as_weight_array(weights)
    logs = np.log(np.where(w > 0, w, 1.0))  # (T, S); zeros contribute 0
    return -(w * logs).sum(axis=1)


def coverage(weights) -> np.ndarray:
    """(T, S) -> (S,) total attention each source position receives over all target rows."""
    return as_weight_array(weights).sum(axis=0)


def diagonal_distance(weights) -> np.ndarray:
    """(T, S) -> (T,) expected distance of each row from the diagonal, both axes scaled to [0, 1]."""
    w = as_weight_array(weights)
    t, s = w.shape
    src_pos = (np.arange(s) + 0.5) / s  # (S,)
    tgt_pos = (np.arange(t) + 0.5) / t  # (T,)
    return (w * np.abs(src_pos[None, :] - tgt_pos[:, None])).sum(axis=1)  # (T,)


@dataclass
class AttentionStatistics:
    sentences: int
    entropy: float            # nats, mean over target words
    coverage_min: float       # mean over sentences of the least-covered source word's coverage
    coverage_max: float       # mean over sentences of the most-covered source word's coverage
    coverage_low: float       # share of source words with coverage below LOW_COVERAGE
    diagonal_distance: float  # mean over target words, in [0, 1)

    def as_dict(self) -> dict:
        return asdict(self)


def corpus_statistics(
    items: Iterable[tuple[object, list[str], list[str]]], *, low: float = LOW_COVERAGE
) -> AttentionStatistics:
    """Word-level statistics over (weights (T, S), source pieces, target pieces) triples, e.g. the
    attention of every hypothesis of a test set. NaN everywhere when there is no sentence."""
    entropies, distances, lows, minima, maxima = [], [], [], [], []
    for weights, src_pieces, tgt_pieces in items:
        if len(src_pieces) == 0 or len(tgt_pieces) == 0:
            continue
        words, src_words, _ = merge_to_words(weights, src_pieces, tgt_pieces)  # (Tw, Sw)
        entropies.append(row_entropy(words))
        distances.append(diagonal_distance(words))
        real = [i for i, word in enumerate(src_words) if not is_special(word)]
        if real:
            cov = coverage(words)[real]  # (real source words,)
            lows.append(cov < low)
            minima.append(cov.min())
            maxima.append(cov.max())

    return AttentionStatistics(sentences=len(entropies), entropy=_pooled_mean(entropies),
                               coverage_min=_pooled_mean(minima), coverage_max=_pooled_mean(maxima),
                               coverage_low=_pooled_mean(lows), diagonal_distance=_pooled_mean(distances))


def _pooled_mean(parts: list) -> float:
    """Mean over all values of a list of arrays or numbers (each value counts once); NaN if none."""
    if not parts:
        return float("nan")
    return float(np.concatenate([np.atleast_1d(p) for p in parts]).mean())


def format_statistics(stats: AttentionStatistics, low: float = LOW_COVERAGE) -> str:
    return (f"attention ({stats.sentences} sentences, word level): entropy {stats.entropy:.3f} nats | "
            f"coverage min {stats.coverage_min:.2f} max {stats.coverage_max:.2f} "
            f"below {low:g}: {100 * stats.coverage_low:.1f}% of source words | "
            f"diagonal distance {stats.diagonal_distance:.3f}")
