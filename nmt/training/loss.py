"""Label-smoothed cross-entropy, summed or per target token, in one pass over the logits each way.

The loss of one token with logits x (V,), gold class y and smoothing eps is that of
`F.cross_entropy(..., label_smoothing=eps)`:

    loss = logsumexp(x) - (1 - eps) * x[y] - eps / V * sum(x)

and its gradient is softmax(x) - q, with q = (1 - eps) * onehot(y) + eps / V.

Why not `F.cross_entropy` on `logits.float()`: that materialises an fp32 copy of the (tokens x V)
logits, their log-softmax, two gradients of it (the NLL and the smoothing term, then added) and a
zero-filled scatter target, each as large as the logits: on a CPU these passes over memory cost
more than the output layer's matrix products (BENCHMARKS.md). Here the forward keeps only the
per-token log-normaliser, and both directions work through the rows in slices small enough to stay
in cache, converting each slice to fp32 on the way. The gradient comes back in the logits' dtype.
"""

import torch
from torch import Tensor

from nmt.models.fusion import fusable, fusion_enabled

# On a CPU, 256 rows x 8,000 classes in fp32 (8 MiB) was the fastest slice of 32..5,000 measured on
# the 2-core machine. A GPU takes all rows at once: slices would only add kernel launches. So do the
# fused kernels, which never hold an fp32 slice in memory: slicing would only add copies.
CPU_ROWS_PER_SLICE = 256


def _rows_per_slice(logits: Tensor) -> int:
    if logits.device.type == "cpu" and not fusion_enabled():
        return CPU_ROWS_PER_SLICE
    return max(logits.shape[0], 1)


@fusable
def _slice_loss(part: Tensor, target: Tensor, smoothing: float, keep: Tensor, summed: bool
                ) -> tuple[Tensor, Tensor]:
    """part (n, V) logits, target (n,), keep (n,) 1 or 0 per row -> log-normalisers (n,) fp32 and the
    kept rows' losses, fp32: summed (a scalar), or each row's (n,), 0 where not kept."""
    part = part.float()  # (n, V)
    lse = torch.logsumexp(part, dim=1)  # (n,)
    gold = part.gather(1, target[:, None])[:, 0]  # (n,)
    rows = (lse - (1.0 - smoothing) * gold - smoothing / part.shape[1] * part.sum(1)) * keep  # (n,)
    # Summed here, not by the caller: compiled, a per-row output made the forward 25% slower on the
    # 2-core CPU (24 against 31 ms for 4,600 rows x 8,000 classes in bf16).
    return lse, (rows.sum() if summed else rows)


@fusable
def _slice_gradient(part: Tensor, log_norm: Tensor, target: Tensor, smoothing: float, scale: Tensor) -> Tensor:
    """(softmax(part) - q) * scale for part (n, V), its log-normalisers (n,), target (n,), scale (n, 1)
    per row; part's dtype."""
    probs = torch.exp(part.float() - log_norm[:, None])  # (n, V) softmax
    # In place on the fresh fp32 slice: eagerly each out-of-place step would be another (n, V) copy.
    probs.sub_(smoothing / part.shape[1])
    probs.scatter_add_(1, target[:, None], torch.full_like(log_norm[:, None], -(1.0 - smoothing)))
    return probs.mul_(scale).to(part.dtype)


@fusable
def _gradient_into_logits(logits: Tensor, log_norm: Tensor, target: Tensor, smoothing: float, scale: Tensor
                          ) -> Tensor:
    """`_slice_gradient` of all rows (scale (N, 1)), written over the logits (N, V) and returned.

    The gold entries are computed first, from the logits, and written last, so each value is rounded
    once, from fp32, as in `_slice_gradient`. Compiled it is one pass over the logits, and the
    training step allocates no second logits-sized buffer: on the 2-core CPU the fresh 57 MB of a
    new one were page-faulted in at nearly every update (14-15k faults, up to 100 ms).
    """
    rows = torch.arange(logits.shape[0], device=logits.device)  # (N,)
    uniform = smoothing / logits.shape[1]
    gold = torch.exp(logits[rows, target].float() - log_norm) - uniform - (1.0 - smoothing)  # (N,)
    logits.copy_((torch.exp(logits.float() - log_norm[:, None]) - uniform) * scale)
    logits[rows, target] = (gold * scale[:, 0]).to(logits.dtype)
    return logits


class _LabelSmoothedNLL(torch.autograd.Function):
    """logits (N, V) -> the summed loss, or each row's (N,), fp32; the backward writes softmax - q, times
    the incoming gradient (of the sum, or of each row), in slices (or over the logits, with `overwrite`)."""

    @staticmethod
    def forward(ctx, logits: Tensor, target: Tensor, smoothing: float, overwrite: bool, keep: Tensor,
                summed: bool) -> Tensor:
        rows = logits.shape[0]
        log_norm = torch.empty(rows, dtype=torch.float32, device=logits.device)  # (N,)
        shape = () if summed else (rows,)
        losses = torch.zeros(shape, dtype=torch.float32, device=logits.device)  # () or (N,)
        step = _rows_per_slice(logits)
        for start in range(0, rows, step):
            end = start + step
            lse, loss = _slice_loss(logits[start:end], target[start:end], smoothing, keep[start:end], summed)
            log_norm[start:end] = lse
            if summed:
                losses += loss
            else:
                losses[start:end] = loss
        ctx.save_for_backward(logits, target, log_norm, keep)
        ctx.smoothing, ctx.overwrite = smoothing, overwrite
        return losses

    @staticmethod
    def backward(ctx, grad_losses: Tensor):
        logits, target, log_norm, keep = ctx.saved_tensors
        scale = (grad_losses * keep)[:, None]  # (N, 1), grad_losses () or (N,): ignored rows get 0
        step = _rows_per_slice(logits)
        if step >= logits.shape[0]:  # one slice: no copy into a gradient buffer
            gradient = _gradient_into_logits if ctx.overwrite else _slice_gradient
            return gradient(logits, log_norm, target, ctx.smoothing, scale), None, None, None, None, None
        grad = logits if ctx.overwrite else torch.empty_like(logits)  # (N, V), the logits' dtype
        for start in range(0, logits.shape[0], step):  # each slice is read before it is written
            end = start + step
            grad[start:end] = _slice_gradient(logits[start:end], log_norm[start:end], target[start:end],
                                              ctx.smoothing, scale[start:end])
        return grad, None, None, None, None, None


def label_smoothed_nll(logits: Tensor, target: Tensor, smoothing: float = 0.0, overwrite: bool = False,
                       ignore_index: int | None = None, reduction: str = "sum") -> Tensor:
    """logits (N, V), target (N,) class ids -> the summed loss, fp32 scalar, or with
    `reduction="none"` each row's loss (N,) fp32.

    Equal to `F.cross_entropy(logits.float(), target, label_smoothing=smoothing, reduction=reduction,
    ignore_index=ignore_index)`: rows whose target is `ignore_index` add nothing, and get a zero
    gradient. With `overwrite`, the backward writes the logits' gradient over the logits themselves
    (the training step, which reads them no more) instead of into a new buffer of their size.
    """
    if logits.dim() != 2 or target.shape != logits.shape[:1]:
        raise ValueError(f"expected logits (N, V) and target (N,), got {tuple(logits.shape)} and "
                         f"{tuple(target.shape)}")
    if reduction not in ("sum", "none"):
        raise ValueError(f"reduction must be 'sum' or 'none', got {reduction!r}")
    if ignore_index is None:
        keep = torch.ones(target.shape, dtype=torch.float32, device=target.device)  # (N,)
    else:
        keep = (target != ignore_index).float()  # (N,)
    return _LabelSmoothedNLL.apply(logits, target, float(smoothing), bool(overwrite), keep, reduction == "sum")
