"""R-Drop (Liang et al., 2021): two dropout samples of the model must agree (`trainer.rdrop_alpha`).

Each batch goes through the model twice in one forward (the batch stacked on itself, so each copy
draws its own dropout masks), and the loss of each target token adds, to the two copies'
cross-entropies, the symmetric KL divergence between their predicted distributions p1 and p2:

    loss = (CE(p1) + CE(p2) + alpha * (KL(p1 || p2) + KL(p2 || p1)) / 2) / 2

which is the paper's objective halved, so the cross-entropy part stays a per-token mean comparable
with a run without it (the paper uses alpha = 5 for IWSLT translation). Dropout alone trains an
average of sub-models that each predict alone; the KL term also asks the sub-models to predict
alike, which narrows the gap between training (dropout on) and translating (dropout off).
An update costs about 2.4 times as much (BENCHMARKS.md, thirteenth round): the doubled batch, and
the KL over the vocabulary per token.
"""

from dataclasses import replace

import torch
from torch import Tensor

from nmt.data.batching import Batch
from nmt.training.loss import CPU_ROWS_PER_SLICE


def stacked_twice(batch: Batch) -> Batch:
    """The batch followed by itself along the batch axis: (B, ...) -> (2B, ...) tensors, examples
    b and B + b the same. The encoder packs unsorted lengths, so the order need not be by length."""
    def twice(tensor: Tensor) -> Tensor:
        return torch.cat([tensor, tensor])

    return replace(batch, src=twice(batch.src), src_lengths=twice(batch.src_lengths), tgt_in=twice(batch.tgt_in),
                   tgt_out=twice(batch.tgt_out), n_tgt_tokens=2 * batch.n_tgt_tokens,
                   indices=batch.indices + batch.indices)


def _rows_per_slice(logits: Tensor) -> int:
    """Slices that stay in cache on a CPU; a GPU takes all rows at once (slices would add launches).
    Unlike the loss's slices, CPU slices stay under `trainer.compile`: the KL is not a fused function,
    so one eager slice of all rows would hold its four fp32 (N, V) temporaries at once."""
    return CPU_ROWS_PER_SLICE if logits.device.type == "cpu" else max(logits.shape[0] // 2, 1)


def _slice_divergence(first: Tensor, second: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """first, second (n, V) logits -> p, q (n, V) fp32 distributions, d = log p - log q (n, V), and
    KL(p || q), KL(q || p) (n,)."""
    log_p, log_q = torch.log_softmax(first.float(), dim=1), torch.log_softmax(second.float(), dim=1)  # (n, V)
    p, q, d = log_p.exp(), log_q.exp(), log_p - log_q  # (n, V)
    return p, q, d, (p * d).sum(1), -(q * d).sum(1)


class _SymmetricKL(torch.autograd.Function):
    """logits (2N, V), keep (N,) -> fp32 scalar; forward and backward in row slices from the logits, as
    `nmt.training.loss` does. Autograd of the plain formula keeps four fp32 (N, V) tensors for the
    backward: a benchmark step's peak memory was 3.8-4.4 GB that way, 2.5-2.6 GB this way (plain: 1.5)."""

    @staticmethod
    def forward(ctx, logits: Tensor, keep: Tensor) -> Tensor:
        rows = keep.shape[0]
        total = torch.zeros((), dtype=torch.float32, device=logits.device)
        step = _rows_per_slice(logits)
        for start in range(0, rows, step):
            end = min(start + step, rows)
            *_, kl_pq, kl_qp = _slice_divergence(logits[start:end], logits[rows + start:rows + end])
            total += ((kl_pq + kl_qp) * keep[start:end]).sum() / 2
        ctx.save_for_backward(logits, keep)
        return total

    @staticmethod
    def backward(ctx, grad_total: Tensor):
        # d/dz1 of (KL(p||q) + KL(q||p)) / 2 is (p * (d - KL(p||q)) + p - q) / 2, with d = log p - log q;
        # for z2, swap p and q (and the sign of d).
        logits, keep = ctx.saved_tensors
        rows = keep.shape[0]
        grad = torch.empty_like(logits)  # (2N, V), the logits' dtype
        step = _rows_per_slice(logits)
        for start in range(0, rows, step):
            end = min(start + step, rows)
            p, q, d, kl_pq, kl_qp = _slice_divergence(logits[start:end], logits[rows + start:rows + end])
            scale = (grad_total * keep[start:end] / 2)[:, None]  # (n, 1)
            grad[start:end] = ((p * (d - kl_pq[:, None]) + p - q) * scale).to(grad.dtype)
            grad[rows + start:rows + end] = ((q * (-d - kl_qp[:, None]) + q - p) * scale).to(grad.dtype)
        return grad, None


def symmetric_kl(logits: Tensor, keep: Tensor) -> Tensor:
    """logits (2N, V), rows [0, N) the first copy's predictions and [N, 2N) the second's for the
    same N target positions, keep (N,) 1 or 0 per position -> fp32 scalar, the sum over kept
    positions of (KL(p1 || p2) + KL(p2 || p1)) / 2."""
    if logits.dim() != 2 or logits.shape[0] != 2 * keep.shape[0]:
        raise ValueError(f"expected logits (2N, V) and keep (N,), got {tuple(logits.shape)} and {tuple(keep.shape)}")
    return _SymmetricKL.apply(logits, keep.float())
