"""GNMT's coverage penalty (Wu et al., 2016, eq. 14) for beam search.

    cp(X; Y) = beta * sum over source positions i of log(min(c_i, 1)),  c_i = sum over target steps of a_t,i

A source position whose total attention stays below 1 was, by the model's own account, left partly
untranslated; the penalty (<= 0) grows with how little it received. Beam search adds it to the
length-normalised scores of its final beam before choosing, so among the hypotheses it found, one
that leaves less of the source uncovered can win: a remedy proposed for dropped words. The search
itself is unchanged (adding the penalty to every candidate that ends a hypothesis, inside the
search, made the reference model's translations 44% too long on val). beta = 0 turns it off.
"""

import torch
from torch import Tensor


def coverage_penalty(coverage: Tensor, src_mask: Tensor, beta: float) -> Tensor:
    """coverage (B, K, S) summed attention per hypothesis, src_mask (B, S) true at real source
    positions -> (B, K) penalties. Padding positions (no attention by construction) do not count."""
    # A position that got no attention at all would give log(0): floor it at the smallest float.
    capped = coverage.float().clamp(min=torch.finfo(torch.float32).tiny, max=1.0)  # (B, K, S)
    return beta * capped.log().masked_fill(~src_mask[:, None, :], 0.0).sum(dim=-1)  # (B, K)


def source_mask(src_lengths: Tensor, width: int) -> Tensor:
    """(B,) lengths -> (B, S) bool, true at the real positions."""
    return torch.arange(width, device=src_lengths.device) < src_lengths[:, None]  # (B, S)
