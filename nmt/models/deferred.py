"""A weight applied at every step of a recurrence, whose gradient is summed in one product at the end.

Autograd computes the weight gradient of each step, x_tᵀ g_t, as its own small matrix product and
adds it into a weight-sized buffer: T small products plus T additions of a (K, N) matrix per
recurrence. `StepProduct` has the steps only record (x_t, g_t); the node that hands the weight to
the steps runs after every step's backward (each step reads its output), and computes
Σ_t x_tᵀ g_t = Xᵀ G as one product over all steps, with X and G the records stacked. The values and
every other gradient are those of `x @ weight + bias` (tests/test_deferred.py).
"""

import torch
from torch import Tensor


def _affine(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """x (..., M, K) @ weight (..., K, N) + bias -> (..., M, N)."""
    if bias is None:
        return x @ weight
    return torch.baddbmm(bias, x, weight) if x.dim() == 3 else torch.addmm(bias, x, weight)


class _HandOut(torch.autograd.Function):
    """Passes the parameters through; its backward adds the recorded steps' gradients in one product."""

    @staticmethod
    def forward(ctx, records: list, *params: Tensor):
        ctx.records = records
        ctx.has_bias = len(params) == 2
        ctx.bias_dim = params[1].dim() if ctx.has_bias else 0
        ctx.set_materialize_grads(False)
        return tuple(p.view_as(p) for p in params)

    @staticmethod
    def backward(ctx, *grads):
        records = ctx.records
        if not records:
            return (None, *grads)
        inputs = torch.cat([x for x, _ in records], dim=-2)  # (..., T*M, K)
        upstream = torch.cat([g for _, g in records], dim=-2)  # (..., T*M, N)
        records.clear()
        summed = [inputs.transpose(-1, -2) @ upstream]  # (..., K, N)
        if ctx.has_bias:
            summed.append(upstream.sum(-2, keepdim=ctx.bias_dim == upstream.dim()))  # bias-shaped
        return (None, *[s if g is None else g + s for s, g in zip(summed, grads, strict=True)])


class _Step(torch.autograd.Function):
    @staticmethod
    def forward(ctx, records: list, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        ctx.save_for_backward(x, weight)
        ctx.records = records
        return _affine(x, weight, bias)

    @staticmethod
    def backward(ctx, grad: Tensor):
        x, weight = ctx.saved_tensors
        ctx.records.append((x, grad))
        grad_x = grad @ weight.transpose(-1, -2) if ctx.needs_input_grad[1] else None
        return None, grad_x, None, None


class StepProduct:
    """`x @ weight + bias` for the steps of one sequence: weight (K, N) or (D, K, N) for D independent
    products (the directions of a bidirectional RNN), bias (N,) or (D, 1, N) or None.

    Make one per sequence (per forward pass). Under autocast the weight is cast once here: autocast
    caches only the casts of parameters themselves, not of views or stacks of them. Without autograd
    (inference) it is a plain product.
    """

    def __init__(self, weight: Tensor, bias: Tensor | None = None):
        device = weight.device.type
        if torch.is_autocast_enabled(device):
            dtype = torch.get_autocast_dtype(device)
            weight, bias = weight.to(dtype), bias.to(dtype) if bias is not None else None
        params = (weight,) if bias is None else (weight, bias)
        self.records: list | None = None
        if torch.is_grad_enabled() and any(p.requires_grad for p in params):
            self.records = []
            params = _HandOut.apply(self.records, *params)
        self.weight, self.bias = params[0], params[1] if bias is not None else None

    def __call__(self, x: Tensor) -> Tensor:
        """x (M, K) or (D, M, K) -> (M, N) or (D, M, N); with a (K, N) weight, x (..., K) -> (..., N)."""
        if self.weight.dim() == 2 and x.dim() > 2:  # the records must be rows: (M, K)
            return self(x.reshape(-1, x.shape[-1])).view(*x.shape[:-1], -1)
        x = x.to(self.weight.dtype)
        if self.records is not None:
            return _Step.apply(self.records, x, self.weight, self.bias)
        return _affine(x, self.weight, self.bias)
