"""Label-smoothed cross-entropy, summed over target tokens, in one pass over the logits each way.

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

# On a CPU, 256 rows x 8,000 classes in fp32 (8 MiB) was the fastest slice of 32..5,000 measured on
# the 2-core machine. A GPU takes all rows at once: slices would only add kernel launches.
CPU_ROWS_PER_SLICE = 256


def _rows_per_slice(logits: Tensor) -> int:
    return CPU_ROWS_PER_SLICE if logits.device.type == "cpu" else max(logits.shape[0], 1)


class _LabelSmoothedNLL(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logits: Tensor, target: Tensor, smoothing: float) -> Tensor:
        rows, vocab = logits.shape
        log_norm = torch.empty(rows, dtype=torch.float32, device=logits.device)  # (N,)
        total = torch.zeros((), dtype=torch.float32, device=logits.device)
        step = _rows_per_slice(logits)
        for start in range(0, rows, step):
            part = logits[start : start + step].float()  # (n, V)
            lse = torch.logsumexp(part, dim=1)  # (n,)
            log_norm[start : start + step] = lse
            gold = part.gather(1, target[start : start + step, None])  # (n, 1)
            total += lse.sum() - (1.0 - smoothing) * gold.sum() - smoothing / vocab * part.sum()
        ctx.save_for_backward(logits, target, log_norm)
        ctx.smoothing = smoothing
        return total

    @staticmethod
    def backward(ctx, grad_total: Tensor):
        logits, target, log_norm = ctx.saved_tensors
        rows, vocab = logits.shape
        smoothing = ctx.smoothing
        grad = torch.empty_like(logits)  # (N, V), the logits' dtype
        step = _rows_per_slice(logits)
        gold_step = torch.full((min(rows, step), 1), -(1.0 - smoothing), device=logits.device)
        for start in range(0, rows, step):
            end = min(start + step, rows)
            probs = torch.exp(logits[start:end].float() - log_norm[start:end, None])  # (n, V) softmax
            probs.sub_(smoothing / vocab)
            probs.scatter_add_(1, target[start:end, None], gold_step[: end - start])
            grad[start:end] = probs.mul_(grad_total)
        return grad, None, None


def label_smoothed_nll(logits: Tensor, target: Tensor, smoothing: float = 0.0) -> Tensor:
    """logits (N, V) of real target tokens only, target (N,) class ids -> the summed loss, fp32 scalar.

    Equal to `F.cross_entropy(logits.float(), target, label_smoothing=smoothing, reduction="sum")`.
    """
    if logits.dim() != 2 or target.shape != logits.shape[:1]:
        raise ValueError(f"expected logits (N, V) and target (N,), got {tuple(logits.shape)} and "
                         f"{tuple(target.shape)}")
    return _LabelSmoothedNLL.apply(logits, target, float(smoothing))
