"""Blocking repeated n-grams during search (fairseq's --no-repeat-ngram-size, OpenNMT-py's
-block_ngram_repeat): a hypothesis may not produce a token that would complete an n-gram of subword
ids it already holds. Recurrent decoders fall into loops ("in front of a white fence in front of a
white fence"); this makes the second copy impossible.

Counted in subwords, as the peers count it, so n = 3 can block a word of three pieces from coming
twice. The banned tokens get -inf before selection, in place, like the other search restrictions;
scores stay the model's own log-probs, so forced decoding of an output still reproduces its score.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def ban_repeated_ngrams_(candidates: Tensor, tokens: Tensor, n: int, active: Tensor) -> None:
    """In place: candidates (B, K, V) becomes -inf at every token that would end an n-gram already in
    its hypothesis's tokens (B, K, T), for the hypotheses marked `active` (B, K) bool (alive, and
    past any forced prefix). EOS never occurs inside an alive hypothesis, so it is never banned and
    every alive hypothesis keeps a way to end."""
    if n < 1:
        raise ValueError(f"an n-gram size must be >= 1, got {n}")
    steps = tokens.size(-1)
    if steps < n:  # not one whole n-gram yet
        return
    windows = tokens.unfold(2, n, 1)  # (B, K, W, n): every n-gram, W = T - n + 1
    suffix = tokens[..., steps - (n - 1):]  # (B, K, n - 1): what the next token would extend
    repeats = (windows[..., :-1] == suffix[..., None, :]).all(dim=-1) & active[..., None]  # (B, K, W)
    # Several n-grams may end in the same token: adding 0 or -inf gives the same result in any order.
    penalty = torch.zeros(repeats.shape, dtype=candidates.dtype, device=candidates.device)  # (B, K, W)
    penalty.masked_fill_(repeats, -math.inf)
    candidates.scatter_add_(2, windows[..., -1], penalty)  # (B, K, V)
