"""Subword regularization: a fresh sampled segmentation of the training data every epoch.

A unigram SentencePiece model gives every sentence many segmentations with a probability each
(Kudo, 2018); a BPE model gets others by skipping merges (BPE-dropout). Training on a different
sample of them each epoch, instead of always the most likely one, shows the model the same words in
several pieces, which regularizes a small-data model; the same option as OpenNMT-py's
``subword_alpha``/``subword_nbest`` and fairseq's ``--sentencepiece-alpha``. Validation, evaluation and translation keep the one best segmentation.

The prepared data holds ids, not texts, so each epoch decodes the ids back to (normalized) text and
samples it again. The sample depends on ``(seed, epoch)`` only, so a resumed run sees the epoch it
left, and every process under torchrun the same one.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import sentencepiece as spm

from nmt.data.storage import RaggedIds
from nmt.data.tokenizer import SubwordTokenizer, Tokenizers
from nmt.errors import ConfigError
from nmt.values import is_int, is_number

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
                  epoch: int) -> tuple[RaggedIds, RaggedIds]:
        """Both sides decoded and segmented again by sampling, the same for the same (seed, epoch)."""
        state = np.random.SeedSequence([seed, epoch]).generate_state(1)[0]
        spm.set_random_generator_seed(int(state))  # one stream: the source side, then the target side
        return self._sample(tokenizers.src, src_ids), self._sample(tokenizers.tgt, tgt_ids)

    def _sample(self, tokenizer: SubwordTokenizer, ids: RaggedIds) -> RaggedIds:
        sampled = []
        for start in range(0, len(ids), CHUNK):
            end = min(start + CHUNK, len(ids))
            bounds = (ids.offsets[start:end + 1] - ids.offsets[start]).tolist()
            flat = ids.flat[ids.offsets[start]:ids.offsets[end]].tolist()  # Python ints decode fast
            texts = tokenizer.decode([flat[a:b] for a, b in itertools.pairwise(bounds)])
            sampled.extend(tokenizer.sample(texts, self.alpha, self.nbest))
        return RaggedIds.from_lists(sampled)
