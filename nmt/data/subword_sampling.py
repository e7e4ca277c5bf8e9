"""Subword regularization: a fresh sampled segmentation of the training data every epoch.

A unigram SentencePiece model gives every sentence many segmentations with a probability each
(Kudo, 2018); a BPE model gets others by skipping merges (BPE-dropout). Training on a different
sample of them each epoch, instead of always the most likely one, shows the model the same words in
several pieces, which regularizes a small-data model; the same option as OpenNMT-py's
``subword_alpha``/``subword_nbest`` and fairseq's ``--sentencepiece-alpha``. Validation, evaluation and translation keep the one best segmentation.

The prepared data holds ids, not texts, so each epoch decodes the ids back to (normalized) text and
samples it again. Two kinds of pair keep their prepared segmentation instead: those holding the
unknown piece, whose text does not survive decoding, and those whose sample is longer than
``data.max_len``, which the prepared data promises to respect. SentencePiece is seeded from
``(seed, epoch)``, which makes the sample repeatable within a process only: its draws differ between
processes (sentencepiece 0.2.3). So under torchrun rank 0 samples for every rank (the trainer), and a
run resumed inside an epoch finishes it on the sample kept on disk (nmt.data.epoch_sample).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import sentencepiece as spm

from nmt.data.storage import RaggedIds
from nmt.data.tokenizer import UNK, SubwordTokenizer, Tokenizers
from nmt.errors import ConfigError
from nmt.values import is_int, is_number

log = logging.getLogger(__name__)

CHUNK = 10_000  # sentences decoded and sampled at a time
OPTIONS = ("subword_alpha", "subword_nbest")  # tokenizer options that do not change the prepared data


@dataclass(frozen=True)
class SubwordSampling:
    """Unigram models sample with smoothing ``alpha`` (lower: flatter, more and shorter pieces) among
    the ``nbest`` best segmentations (-1: all of them); BPE models drop each merge with probability
    ``alpha`` (BPE-dropout, Provilkov et al., 2020) and ignore ``nbest``."""

    alpha: float
    nbest: int

    @classmethod
    def from_config(cls, tok_cfg: Mapping) -> SubwordSampling | None:
        """The ``tokenizer.subword_alpha``/``subword_nbest`` setting; None when sampling is off (alpha 0)."""
        alpha, nbest = tok_cfg.get("subword_alpha") or 0.0, tok_cfg.get("subword_nbest", 64)
        if not (is_number(alpha) and 0 <= alpha <= 1):
            raise ConfigError(f"tokenizer.subword_alpha must be a number from 0 (off) to 1; got {alpha!r}")
        if not (is_int(nbest) and (nbest == -1 or nbest > 1)):
            raise ConfigError(f"tokenizer.subword_nbest must be -1 (all segmentations) or an integer above 1; "
                              f"got {nbest!r}")
        return cls(float(alpha), int(nbest)) if alpha else None

    def resegment(self, tokenizers: Tokenizers, src_ids: RaggedIds, tgt_ids: RaggedIds, seed: int,
                  epoch: int, max_len: int | None = None) -> tuple[RaggedIds, RaggedIds]:
        """Both sides decoded and segmented again by sampling, the same for the same (seed, epoch).
        A pair keeps its prepared segmentation when a side holds UNK (decoded as " ⁇ ", it would come
        back as other text) or when a sample is longer than ``max_len`` (data.max_len, which the
        prepared pairs are within), so every pair stays, with its text and within max_len."""
        state = np.random.SeedSequence([seed, epoch]).generate_state(1)[0]
        spm.set_random_generator_seed(int(state))  # one stream: the source side, then the target side
        fixed = _holds(src_ids, UNK) | _holds(tgt_ids, UNK)  # (N,)
        src, tgt = self._sample(tokenizers.src, src_ids, fixed), self._sample(tokenizers.tgt, tgt_ids, fixed)
        too_long = _restore_long(max_len, src, tgt, src_ids, tgt_ids) if max_len is not None else 0
        if fixed.any() or too_long:
            log.info("subword sampling kept the prepared segmentation of %d pairs with an unknown piece "
                     "and %d whose sample was longer than max_len=%s", fixed.sum(), too_long, max_len)
        return RaggedIds.from_lists(src), RaggedIds.from_lists(tgt)

    def _sample(self, tokenizer: SubwordTokenizer, ids: RaggedIds, fixed: np.ndarray) -> list[list[int]]:
        """Every sentence's ids: sampled anew, or as prepared where ``fixed`` (N,) is set."""
        seqs = []
        for start in range(0, len(ids), CHUNK):
            end = min(start + CHUNK, len(ids))
            bounds = (ids.offsets[start:end + 1] - ids.offsets[start]).tolist()
            flat = ids.flat[ids.offsets[start]:ids.offsets[end]].tolist()  # Python ints decode fast
            chunk = [flat[a:b] for a, b in itertools.pairwise(bounds)]
            todo = np.flatnonzero(~fixed[start:end]).tolist()
            texts = tokenizer.decode([chunk[i] for i in todo])
            for i, sampled in zip(todo, tokenizer.sample(texts, self.alpha, self.nbest), strict=True):
                chunk[i] = sampled
            seqs.extend(chunk)
        return seqs


def _holds(ids: RaggedIds, token: int) -> np.ndarray:
    """(N,) whether each sentence holds ``token``."""
    rows = np.searchsorted(ids.offsets, np.flatnonzero(ids.flat == token), side="right") - 1  # (hits,)
    found = np.zeros(len(ids), dtype=bool)  # (N,)
    found[rows] = True
    return found


def _restore_long(max_len: int, src: list[list[int]], tgt: list[list[int]], src_ids: RaggedIds,
                  tgt_ids: RaggedIds) -> int:
    """Puts the prepared segmentation back into ``src``/``tgt`` for pairs whose sample has a side
    longer than ``max_len``; returns how many."""
    longest = np.fromiter(map(max, map(len, src), map(len, tgt)), dtype=np.int64, count=len(src))  # (N,)
    rows = np.flatnonzero(longest > max_len).tolist()
    for i in rows:
        src[i], tgt[i] = src_ids[i].tolist(), tgt_ids[i].tolist()
    return len(rows)
