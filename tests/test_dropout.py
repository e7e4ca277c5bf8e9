"""The CPU dropout: what a dropout must do, since its mask is drawn differently from F.dropout's."""

import pytest
import torch
import torch.nn.functional as F

from nmt.models.dropout import Dropout, dropout


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_drops_at_rate_p_scales_the_rest_and_passes_the_gradient_through_its_mask(dtype):
    torch.manual_seed(3)
    layer = Dropout(0.3)
    x = (torch.rand(64, 9, 32) + 1).to(dtype).requires_grad_()  # all positive: a 0 is a dropped unit
    y, y_again = layer(x), layer(x)
    assert y.dtype == dtype and y.shape == x.shape
    kept = y != 0
    assert abs(1 - kept.float().mean().item() - 0.3) < 0.02  # 18,432 units
    torch.testing.assert_close(y[kept], (x[kept] / 0.7).to(dtype))  # kept units are scaled by 1/(1-p)
    assert not torch.equal(kept, y_again != 0)  # a fresh mask at every call
    (grad,) = torch.autograd.grad(y.float().sum(), x)
    torch.testing.assert_close(grad, kept.to(dtype) / 0.7)


def test_is_the_identity_in_eval_mode_or_at_p_0_and_zeros_at_p_1():
    x = torch.randn(5, 7)
    layer = Dropout(0.5).eval()
    assert layer(x) is x
    assert dropout(x, 0.0, True) is x
    assert torch.equal(dropout(x, 1.0, True), torch.zeros_like(x))


def test_the_same_seed_gives_the_same_mask():
    x = torch.randn(4, 50)
    torch.manual_seed(9)
    first = dropout(x, 0.4, True)
    torch.manual_seed(9)
    assert torch.equal(dropout(x, 0.4, True), first)


def test_is_a_drop_in_for_nn_dropout():
    """Same module type and options, so models and checkpoints do not change."""
    layer = Dropout(0.2)
    assert isinstance(layer, torch.nn.Dropout) and layer.p == 0.2 and layer.state_dict() == {}
    assert F.dropout(torch.ones(3), 0.2, False).tolist() == layer.eval()(torch.ones(3)).tolist()
