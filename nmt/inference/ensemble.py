"""Ensemble decoding: several models that share one vocabulary, searched as if they were one.

At every step each member reads the same previous tokens with its own state, and the ensemble's
distribution over the next token is the mean of the members' probabilities, returned as its log:

    log p(y | ...) = log (1/M) sum_m p_m(y | ...) = logsumexp_m(log p_m) - log M

(the mean of probabilities, not of log-probabilities: a token one member finds impossible stays
possible when another member likes it). The attention returned is the mean of the members' weights.

The ensemble implements `nmt.inference.search.Searchable`, so greedy search, beam search and forced
decoding run on it unchanged. Its cost is the members' added together.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from nmt.models.seq2seq import Seq2Seq


class Ensemble(nn.Module):
    def __init__(self, members: Sequence[Seq2Seq]):
        super().__init__()
        if len(members) < 2:
            raise ValueError(f"an ensemble needs at least 2 models, got {len(members)}")
        vocab_sizes = {m.generator.out_features for m in members}
        if len(vocab_sizes) > 1:
            raise ValueError(f"ensemble members must share one target vocabulary, got sizes {sorted(vocab_sizes)}")
        first = members[0]
        if any((m.pad_id, m.bos_id, m.eos_id) != (first.pad_id, first.bos_id, first.eos_id) for m in members):
            raise ValueError("ensemble members must use the same pad, BOS and EOS ids")
        self.members = nn.ModuleList(members)
        self.pad_id, self.bos_id, self.eos_id = first.pad_id, first.bos_id, first.eos_id
        self._log_size = math.log(len(members))

    def encode(self, src: Tensor, src_lengths: Tensor) -> tuple:
        """src (B, S), src_lengths (B,) -> one decoder state per member."""
        return tuple(member.encode(src, src_lengths) for member in self.members)

    def decode_step(self, prev_tokens: Tensor, state: tuple) -> tuple[Tensor, tuple, Tensor]:
        """prev_tokens (B,) -> log of the mean probability (B, V), new states, mean attention (B, S)."""
        steps = [member.decode_step(prev_tokens, s) for member, s in zip(self.members, state, strict=True)]
        log_probs = torch.stack([log_p.float() for log_p, _, _ in steps])  # (M, B, V)
        attention = torch.stack([weights.float() for _, _, weights in steps])  # (M, B, S)
        mean_log_probs = torch.logsumexp(log_probs, dim=0) - self._log_size  # (B, V)
        return mean_log_probs, tuple(new for _, new, _ in steps), attention.mean(dim=0)

    def reorder_state(self, state: tuple, index: Tensor) -> tuple:
        return tuple(member.reorder_state(s, index) for member, s in zip(self.members, state, strict=True))
