"""R-Drop (Liang et al., 2021): two dropout samples of the model must agree (`trainer.rdrop_alpha`).

Each batch goes through the model twice in one forward (the batch stacked on itself, so each copy
draws its own dropout masks), and the loss of each target token adds, to the two copies'
cross-entropies, the symmetric KL divergence between their predicted distributions p1 and p2:

    loss = (CE(p1) + CE(p2) + alpha * (KL(p1 || p2) + KL(p2 || p1)) / 2) / 2

which is the paper's objective halved, so the cross-entropy part stays a per-token mean comparable
with a run without it (the paper uses alpha = 5 for IWSLT translation). Dropout alone trains an
average of sub-models that each predict alone; the KL term also asks the sub-models to predict
alike, which narrows the gap between training (dropout on) and translating (dropout off).
An update costs about twice as much: the doubled batch, and the KL over the vocabulary per token.
"""

from dataclasses import replace

import torch
from torch import Tensor

from nmt.data.batching import Batch


def stacked_twice(batch: Batch) -> Batch:
    """The batch followed by itself along the batch axis: (B, ...) -> (2B, ...) tensors, examples
    b and B + b the same. The encoder packs unsorted lengths, so the order need not be by length."""
    def twice(tensor: Tensor) -> Tensor:
        return torch.cat([tensor, tensor])

    return replace(batch, src=twice(batch.src), src_lengths=twice(batch.src_lengths), tgt_in=twice(batch.tgt_in),
                   tgt_out=twice(batch.tgt_out), n_tgt_tokens=2 * batch.n_tgt_tokens,
                   indices=batch.indices + batch.indices)


def symmetric_kl(logits: Tensor, keep: Tensor) -> Tensor:
    """logits (2N, V), rows [0, N) the first copy's predictions and [N, 2N) the second's for the
    same N target positions, keep (N,) 1 or 0 per position -> fp32 scalar, the sum over kept
    positions of (KL(p1 || p2) + KL(p2 || p1)) / 2."""
    first, second = logits.float().chunk(2)  # (N, V) each
    log_p, log_q = torch.log_softmax(first, dim=1), torch.log_softmax(second, dim=1)  # (N, V)
    # KL(p || q) + KL(q || p) = sum over classes of (p - q) * (log p - log q): one pass, not two.
    both_ways = ((log_p.exp() - log_q.exp()) * (log_p - log_q)).sum(1)  # (N,)
    return (both_ways * keep).sum() / 2
