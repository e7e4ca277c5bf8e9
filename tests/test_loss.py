"""The sliced label-smoothed loss against PyTorch's cross-entropy."""

import pytest
import torch
import torch.nn.functional as F

from nmt.training.loss import CPU_ROWS_PER_SLICE, label_smoothed_nll

VOCAB = 37


def reference(logits, target, smoothing):
    return F.cross_entropy(logits.double(), target, label_smoothing=smoothing, reduction="sum")


@pytest.mark.parametrize("smoothing", [0.0, 0.1, 0.3])
@pytest.mark.parametrize("rows", [1, CPU_ROWS_PER_SLICE, 2 * CPU_ROWS_PER_SLICE + 17])
def test_equals_cross_entropy_value_and_gradient_in_float64(smoothing, rows):
    torch.manual_seed(rows)
    logits = (3 * torch.randn(rows, VOCAB, dtype=torch.float64)).requires_grad_()
    target = torch.randint(0, VOCAB, (rows,))
    ours = label_smoothed_nll(logits, target, smoothing)
    (grad_ours,) = torch.autograd.grad(2.5 * ours, logits)  # a non-unit upstream gradient
    expected = reference(logits, target, smoothing)
    (grad_expected,) = torch.autograd.grad(2.5 * expected, logits)
    # the loss sums in fp32, so the value agrees to fp32 precision; the gradient is computed per row
    assert ours.dtype == torch.float32
    assert ours.item() == pytest.approx(expected.item(), rel=1e-6)
    assert torch.allclose(grad_ours, grad_expected, atol=1e-6)


def test_bf16_logits_give_an_fp32_loss_and_a_bf16_gradient():
    torch.manual_seed(0)
    exact = 4 * torch.randn(300, 8000)
    target = torch.randint(0, 8000, (300,))
    logits = exact.bfloat16().requires_grad_()
    loss = label_smoothed_nll(logits, target, 0.1)
    loss.backward()
    expected = logits.detach().double().requires_grad_()
    reference(expected, target, 0.1).backward()
    assert loss.item() == pytest.approx(reference(logits.detach().double(), target, 0.1).item(), rel=1e-5)
    assert logits.grad.dtype == torch.bfloat16
    assert torch.allclose(logits.grad.double(), expected.grad, atol=4e-3)


def test_rejects_padded_three_dimensional_logits():
    with pytest.raises(ValueError, match=r"expected logits \(N, V\)"):
        label_smoothed_nll(torch.zeros(2, 3, VOCAB), torch.zeros(2, 3, dtype=torch.long))



@pytest.mark.parametrize("rows", [5, 2 * CPU_ROWS_PER_SLICE + 17])  # one slice, several slices
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_overwrite_puts_the_same_gradient_in_the_logits_memory(rows, dtype):
    torch.manual_seed(rows)
    base, target = 3 * torch.randn(rows, VOCAB), torch.randint(0, VOCAB, (rows,))
    kept = base.to(dtype).requires_grad_()
    (expected,) = torch.autograd.grad(label_smoothed_nll(kept, target, 0.1), kept)
    logits = base.to(dtype).requires_grad_()
    loss = label_smoothed_nll(logits * 1, target, 0.1, overwrite=True)  # `* 1`: a non-leaf, as in training
    (grad,) = torch.autograd.grad(loss, logits)
    assert torch.equal(grad, expected)  # bit for bit: every value rounded once from fp32


def test_overwrite_reuses_the_logits_storage():
    logits = torch.randn(6, VOCAB).requires_grad_()
    scores = logits * 1
    captured = []
    scores.register_hook(captured.append)
    label_smoothed_nll(scores, torch.randint(0, VOCAB, (6,)), 0.1, overwrite=True).backward()
    assert captured[0].data_ptr() == scores.data_ptr()


def logits_with_ignored_rows(rows, every):
    """float64 logits (rows, VOCAB) to differentiate, and targets with every `every`-th row ignored (0)."""
    torch.manual_seed(rows)
    logits = (3 * torch.randn(rows, VOCAB, dtype=torch.float64)).requires_grad_()
    target = torch.randint(1, VOCAB, (rows,))
    target[::every] = 0
    return logits, target


@pytest.mark.parametrize("rows", [9, 2 * CPU_ROWS_PER_SLICE + 17])
@pytest.mark.parametrize("overwrite", [False, True])
def test_ignored_rows_add_nothing_and_get_a_zero_gradient(rows, overwrite):
    logits, target = logits_with_ignored_rows(rows, 3)
    expected = F.cross_entropy(logits, target, label_smoothing=0.1, reduction="sum", ignore_index=0)
    (expected_grad,) = torch.autograd.grad(expected, logits)
    loss = label_smoothed_nll(logits * 1, target, 0.1, overwrite=overwrite, ignore_index=0)
    (grad,) = torch.autograd.grad(loss, logits)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    torch.testing.assert_close(grad.double(), expected_grad, atol=1e-6, rtol=1e-6)
    assert torch.all(grad[::3] == 0)


@pytest.mark.parametrize("rows", [7, 2 * CPU_ROWS_PER_SLICE + 17])
@pytest.mark.parametrize("overwrite", [False, True])
def test_per_row_losses_and_a_weighted_sum_of_them_match_cross_entropy(rows, overwrite):
    """reduction="none" is what minimum risk training weights row by row (nmt/training/risk.py)."""
    logits, target = logits_with_ignored_rows(rows, 4)
    weights = torch.randn(rows, dtype=torch.float64)  # negative weights too
    expected = F.cross_entropy(logits, target, label_smoothing=0.1, reduction="none", ignore_index=0)
    (expected_grad,) = torch.autograd.grad((expected * weights).sum(), logits)
    losses = label_smoothed_nll(logits * 1, target, 0.1, overwrite=overwrite, ignore_index=0, reduction="none")
    (grad,) = torch.autograd.grad((losses * weights).sum(), logits)
    assert losses.shape == (rows,) and losses.dtype == torch.float32
    torch.testing.assert_close(losses.double(), expected, atol=1e-5, rtol=1e-6)
    torch.testing.assert_close(grad.double(), expected_grad, atol=1e-6, rtol=1e-6)
    assert torch.all(losses[::4] == 0) and torch.all(grad[::4] == 0)


def test_an_unknown_reduction_is_refused():
    with pytest.raises(ValueError, match="reduction must be 'sum' or 'none'"):
        label_smoothed_nll(torch.zeros(2, VOCAB), torch.zeros(2, dtype=torch.long), reduction="mean")
