"""The step-loop form of the additive scores: the keys' gradient summed in the backward kernel."""

import os

import pytest
import torch

from nmt.models.additive_scores import SummedKeys, additive_scores, step_scores
from nmt.models.fusion import compiler_available, fusion


def gradients(use_steps: bool, fused: bool = False, dtype=torch.float64, steps: int = 5, tq: int = 1):
    """Scores of `steps` queries over one set of keys, and the gradients of a weighted sum of them."""
    torch.manual_seed(0)
    keys = torch.randn(3, 7, 6, dtype=torch.float64).to(dtype).requires_grad_()  # (B, S, A)
    queries = [torch.randn(3, tq, 6, dtype=torch.float64).to(dtype).requires_grad_() for _ in range(steps)]
    v = torch.randn(1, 6, dtype=torch.float64).to(dtype if dtype == torch.float64 else torch.float32)
    v.requires_grad_()
    weights = [torch.randn(3, tq, 7, dtype=torch.float64) for _ in range(steps)]
    with fusion(fused):
        summed = SummedKeys(keys)  # one per sequence
        scores = [step_scores(q, summed, v) if use_steps else additive_scores(q, keys, v) for q in queries]
    total = sum((s.double() * w).sum() for s, w in zip(scores, weights, strict=True))
    grads = torch.autograd.grad(total, [keys, v, *queries])
    return [s.detach() for s in scores], grads


@pytest.mark.parametrize("tq", [1, 3])
def test_step_scores_and_their_gradients_equal_plain_autograd_in_float64(tq):
    (plain_scores, plain_grads), (step_scores_, step_grads) = gradients(False, tq=tq), gradients(True, tq=tq)
    for a, b in zip(plain_scores + list(plain_grads), step_scores_ + list(step_grads), strict=True):
        assert a.shape == b.shape and a.dtype == b.dtype
        torch.testing.assert_close(b, a, atol=1e-12, rtol=1e-12)


def test_keys_read_outside_the_step_loop_too_get_both_gradients():
    """The summed step gradient is added to whatever else the keys' gradient holds, not dropped."""
    torch.manual_seed(1)
    keys = torch.randn(2, 4, 3, dtype=torch.float64, requires_grad=True)  # (B, S, A)
    queries = [torch.randn(2, 1, 3, dtype=torch.float64) for _ in range(3)]
    v = torch.randn(1, 3, dtype=torch.float64)
    other = torch.randn(2, 4, 3, dtype=torch.float64)

    def keys_gradient(use_steps: bool) -> torch.Tensor:
        summed = SummedKeys(keys)
        total = (summed.keys * other).sum()  # a use of the keys besides the scores
        for q in queries:
            total = total + (step_scores(q, summed, v) if use_steps else additive_scores(q, summed.keys, v)).sum()
        return torch.autograd.grad(total, keys)[0]

    expected = keys_gradient(False)
    assert not torch.allclose(expected, other)  # the scores do contribute
    torch.testing.assert_close(keys_gradient(True), expected, atol=1e-12, rtol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_compiled_step_scores_equal_plain_autograd(dtype):
    if not compiler_available():
        if os.environ.get("CI") == "true":
            pytest.fail("no C++ compiler: CI must test the fused kernels")
        pytest.skip("no C++ compiler for torch.compile")
    plain_scores, plain_grads = gradients(False, dtype=dtype)
    fused_scores, fused_grads = gradients(True, fused=True, dtype=dtype)
    tol = 1e-5 if dtype == torch.float32 else 5e-2
    for a, b in zip(plain_scores + list(plain_grads), fused_scores + list(fused_grads), strict=True):
        assert a.shape == b.shape and a.dtype == b.dtype
        torch.testing.assert_close(b.float(), a.float(), atol=tol, rtol=tol)


def test_without_autograd_the_keys_are_only_held():
    keys = torch.randn(2, 4, 3)
    with torch.no_grad():
        summed = SummedKeys(keys.requires_grad_())
        assert not summed.tracked and summed.keys is keys
        query, v = torch.randn(2, 1, 3), torch.ones(1, 3)
        assert torch.equal(step_scores(query, summed, v), additive_scores(query, keys, v))


def test_step_loops_sum_the_keys_only_where_it_pays():
    """Additive and concat attention on the CPU with fusion on; not eagerly, not for dot products."""
    from nmt.models.attention import build_attention

    keys, values = torch.randn(2, 5, 8), torch.randn(2, 5, 8)
    for name, expected in [("additive", True), ("concat", True), ("general", False)]:
        attention = build_attention(name, query_dim=8, key_dim=8)
        with fusion(True):
            assert (attention.sequence_products(keys, values).keys is not None) == expected, name
        assert attention.sequence_products(keys, values).keys is None, name
