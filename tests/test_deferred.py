"""StepProduct: the values and gradients of a plain `x @ W + b` recurrence, in float64."""

import pytest
import torch

from nmt.models.deferred import StepProduct


def recurrence(product, h, inputs):
    for x in inputs:
        h = torch.tanh(product(h) + x)
    return h


@pytest.mark.parametrize("batched, with_bias", [(False, True), (False, False), (True, True)])
def test_gradients_equal_the_step_by_step_autograd_ones(batched, with_bias):
    torch.manual_seed(0)
    lead = (2,) if batched else ()
    weight = torch.randn(*lead, 5, 5, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(*lead, *((1,) if batched else ()), 5, dtype=torch.float64, requires_grad=True)
    bias = bias if with_bias else None
    h0 = torch.randn(*lead, 3, 5, dtype=torch.float64, requires_grad=True)
    inputs = torch.randn(4, *lead, 3, 5, dtype=torch.float64, requires_grad=True)
    params = [p for p in (weight, bias, h0, inputs) if p is not None]

    def plain(h):
        return h @ weight if bias is None else h @ weight + bias

    # the handed-out weight is also used once outside the recurrence: both gradients must add up
    def loss(product, outside_weight):
        weights = torch.arange(5.0, dtype=torch.float64)
        return (recurrence(product, h0, inputs) * weights).sum() + outside_weight.sum() ** 2

    expected = torch.autograd.grad(loss(plain, weight), params)
    deferred = StepProduct(weight, bias)
    got = torch.autograd.grad(loss(deferred, deferred.weight), params)
    assert deferred.records == []  # handed over and released by the backward
    for mine, reference in zip(got, expected, strict=True):
        assert torch.allclose(mine, reference, atol=1e-12)


def test_is_a_plain_product_without_autograd():
    weight = torch.randn(4, 3)
    with torch.no_grad():
        product = StepProduct(weight, torch.ones(3))
        assert product.records is None
        assert torch.allclose(product(torch.eye(4)), weight + 1)


def test_casts_the_weight_once_under_autocast():
    weight = torch.randn(4, 3, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        product = StepProduct(weight)
        out = product(torch.randn(2, 4))
    assert product.weight.dtype == out.dtype == torch.bfloat16
    out.sum().backward()
    assert weight.grad.dtype == torch.float32 and weight.grad.abs().sum() > 0


def test_a_matrix_weight_takes_inputs_with_leading_dimensions_as_rows():
    torch.manual_seed(4)
    weight, bias = torch.randn(4, 3, requires_grad=True), torch.randn(3, requires_grad=True)
    inputs = [torch.randn(5, 1, 4) for _ in range(3)]  # (B, 1, K) per step, as the attention's query
    product = StepProduct(weight, bias)
    out = sum((product(x) * (i + 1)).sum() for i, x in enumerate(inputs))
    assert product(inputs[0]).shape == (5, 1, 3)
    deferred = torch.autograd.grad(out, [weight, bias])
    plain = torch.autograd.grad(sum(((x @ weight + bias) * (i + 1)).sum() for i, x in enumerate(inputs)),
                                [weight, bias])
    for a, b in zip(deferred, plain, strict=True):
        torch.testing.assert_close(a, b)
