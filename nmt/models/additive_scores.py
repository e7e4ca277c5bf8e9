"""The scores of additive attention, vᵀ tanh(W_q q + W_k k), for every (query, key) pair, and the
form a teacher-forced step loop uses.

`additive_scores` is the plain function, compiled while fusion is on. In a step loop every step
reads the same keys (B, S, A). Through autograd each step's backward would write its own
(B, S, A) key gradient and then add it into the keys' gradient buffer: two more passes over memory
per step. `SummedKeys` hands the keys to the steps of one sequence, and `step_scores`' backward adds
its key gradient into one fp32 sum inside the kernel that computes it; that sum becomes the keys'
gradient once every step's backward has run (as `StepProduct` does for weights). On the 2-core CPU,
bf16, compiled: 21 steps over (186, 21, 512) keys, forward and backward, 56 against 112 ms.
"""

import torch
from torch import Tensor

from nmt.models.fusion import fusable


def _wide(x: Tensor) -> Tensor:
    """x in fp32, or in its own dtype when that is wider (float64 stays float64)."""
    return x.to(torch.promote_types(x.dtype, torch.float32))


def _tanh(x: Tensor) -> Tensor:
    """tanh(x) = 2 sigmoid(2x) - 1. Inductor's CPU tanh is twice as slow as its exponential (behind
    sigmoid); eagerly this would be four passes over memory instead of one, so only compiled forms
    use it."""
    return 2 * torch.sigmoid(2 * x) - 1


def _scores_compiled(query_part: Tensor, key_part: Tensor, v: Tensor) -> Tensor:
    """`additive_scores` in fp32 through `_tanh`: the form compiled (bf16, 2 cores: forward 0.90
    against 1.79 ms for a (186, 1, 21, 512) layer)."""
    pre = _wide(query_part[:, :, None, :] + key_part[:, None, :, :])  # (B, Tq, S, A)
    scores = (_tanh(pre) * _wide(v[0])).sum(-1)  # (B, Tq, S)
    return scores.to(torch.promote_types(query_part.dtype, key_part.dtype))


@fusable(fused_form=_scores_compiled)
def additive_scores(query_part: Tensor, key_part: Tensor, v: Tensor) -> Tensor:
    """vᵀ tanh(query_part + key_part) for every (query, key) pair: (B, Tq, A), (B, S, A), v (1, A)
    -> (B, Tq, S). Fused, the (B, Tq, S, A) tanh layer never reaches memory."""
    hidden = torch.tanh(query_part[:, :, None, :] + key_part[:, None, :, :])  # (B, Tq, S, A)
    return (hidden * v[0].to(hidden.dtype)).sum(-1)  # (B, Tq, S)


def _step_backward_compiled(query_part: Tensor, key_part: Tensor, v: Tensor, grad: Tensor,
                            key_grad_sum: Tensor) -> tuple[Tensor, Tensor]:
    """`_step_backward` through `_tanh`: the form compiled."""
    pre = _wide(query_part[:, :, None, :] + key_part[:, None, :, :])  # (B, Tq, S, A)
    return _step_gradients(_tanh(pre), query_part, v, grad, key_grad_sum)


@fusable(fused_form=_step_backward_compiled)
def _step_backward(query_part: Tensor, key_part: Tensor, v: Tensor, grad: Tensor,
                   key_grad_sum: Tensor) -> tuple[Tensor, Tensor]:
    """The gradients of `additive_scores` for upstream `grad` (B, Tq, S): returns those of
    query_part (B, Tq, A) and v (1, A), and adds that of key_part, summed over Tq, into
    `key_grad_sum` (B, S, A) (fp32 or wider) in place."""
    hidden = torch.tanh(_wide(query_part[:, :, None, :] + key_part[:, None, :, :]))  # (B, Tq, S, A)
    return _step_gradients(hidden, query_part, v, grad, key_grad_sum)


def _step_gradients(hidden: Tensor, query_part: Tensor, v: Tensor, grad: Tensor, key_grad_sum: Tensor
                    ) -> tuple[Tensor, Tensor]:
    """hidden = tanh(pre) (B, Tq, S, A), fp32 or wider -> the gradients of `_step_backward`."""
    upstream = _wide(grad)[..., None]  # (B, Tq, S, 1)
    grad_pre = upstream * _wide(v[0]) * (1 - hidden * hidden)  # (B, Tq, S, A)
    key_grad_sum.add_(grad_pre.sum(1))  # (B, S, A)
    grad_v = (upstream * hidden).sum((0, 1, 2))[None]  # (1, A)
    return grad_pre.sum(2).to(query_part.dtype), grad_v.to(v.dtype)  # (B, Tq, A), (1, A)


class _HandOutKeys(torch.autograd.Function):
    """Passes the keys through; its backward, after every step's, returns the steps' summed gradient."""

    @staticmethod
    def forward(ctx, sums: list, keys: Tensor) -> Tensor:
        ctx.sums, ctx.dtype = sums, keys.dtype
        ctx.set_materialize_grads(False)
        return keys.view_as(keys)

    @staticmethod
    def backward(ctx, grad: Tensor | None):
        if not ctx.sums:
            return None, grad
        total = ctx.sums.pop().to(ctx.dtype)
        return None, total if grad is None else grad + total


class _StepScores(torch.autograd.Function):
    @staticmethod
    def forward(ctx, query_part: Tensor, keys: Tensor, v: Tensor, summed: "SummedKeys") -> Tensor:
        ctx.save_for_backward(query_part, keys, v)
        ctx.summed = summed
        return additive_scores(query_part, keys, v)

    @staticmethod
    def backward(ctx, grad: Tensor):
        query_part, keys, v = ctx.saved_tensors
        grad_query, grad_v = _step_backward(query_part, keys, v, grad, ctx.summed.gradient_sum())
        return grad_query, None, grad_v, None


class SummedKeys:
    """The keys (B, S, A) of one teacher-forced sequence, for `step_scores`. Make one per sequence.

    Without autograd (or keys that need no gradient) it only holds the keys.
    """

    def __init__(self, keys: Tensor):
        # The steps' summed key gradient (fp32 or wider), made by the first backward. A list, as
        # StepProduct's records: the hand-out node holds it, not this object, so no reference cycle.
        self.sums: list[Tensor] = []
        self.tracked = torch.is_grad_enabled() and keys.requires_grad
        self.keys = _HandOutKeys.apply(self.sums, keys) if self.tracked else keys

    def gradient_sum(self) -> Tensor:
        if not self.sums:
            dtype = torch.promote_types(self.keys.dtype, torch.float32)
            self.sums.append(torch.zeros(self.keys.shape, dtype=dtype, device=self.keys.device))
        return self.sums[0]


def step_scores(query_part: Tensor, keys: SummedKeys, v: Tensor) -> Tensor:
    """`additive_scores(query_part, keys, v)` for one step of a sequence (see the module's note)."""
    if not keys.tracked:
        return additive_scores(query_part, keys.keys, v)
    return _StepScores.apply(query_part, keys.keys, v, keys)
