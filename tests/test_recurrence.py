"""The CPU's padded recurrence against nn.GRU/nn.LSTM on packed batches, and the shared cells."""

import itertools

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from nmt.models.encoder import RNNEncoder
from nmt.models.recurrence import padded_recurrence, reversal_index, run_cudnn_rnn

LENGTHS = torch.tensor([5, 1, 3, 5, 2])


def packed_reference(rnn, x, lengths):
    packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    out, hidden = rnn(packed)
    hidden, cell = hidden if isinstance(hidden, tuple) else (hidden, None)
    out, _ = pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
    return out, hidden, cell


def test_reversal_index_reverses_within_each_length_and_is_its_own_inverse():
    index = reversal_index(torch.tensor([3, 1, 4]), 4)
    assert index.tolist() == [[2, 1, 0, 3], [0, 1, 2, 3], [3, 2, 1, 0]]
    assert torch.equal(index.gather(1, index), torch.arange(4).expand(3, 4))


@pytest.mark.parametrize("cls, bidirectional, layers",
                         list(itertools.product([nn.GRU, nn.LSTM], [True, False], [1, 2])))
def test_equals_the_packed_module_outputs_states_and_gradients_in_float64(cls, bidirectional, layers):
    torch.manual_seed(layers + 2 * bidirectional)
    rnn = cls(6, 4, layers, batch_first=True, bidirectional=bidirectional).double()
    x = torch.randn(len(LENGTHS), int(LENGTHS.max()), 6, dtype=torch.float64, requires_grad=True)
    ours = padded_recurrence(rnn, x, LENGTHS)
    theirs = packed_reference(rnn, x, LENGTHS)
    for mine, reference in zip(ours, theirs, strict=True):
        if reference is None:
            assert mine is None
        else:
            assert mine.shape == reference.shape
            assert torch.allclose(mine, reference, atol=1e-12)
    # the gradient of a loss that reads every output and final state, for inputs and parameters
    upstream = [torch.randn_like(t) for t in theirs if t is not None]
    params = [x, *rnn.parameters()]

    def grads(outputs):
        loss = sum((u * t).sum() for u, t in zip(upstream, [t for t in outputs if t is not None], strict=True))
        return torch.autograd.grad(loss, params)

    for mine, reference in zip(grads(ours), grads(theirs), strict=True):
        assert torch.allclose(mine, reference, atol=1e-12)


@pytest.mark.parametrize("rnn_type", ["gru", "lstm"])
def test_encoder_summary_is_the_last_layers_final_forward_and_backward_states(rnn_type):
    """The sentence summary the decoder starts from is the top layer's [forward; backward] final
    hidden state of the packed nn module (h_n[-2], h_n[-1]), not a lower layer's."""
    torch.manual_seed(3)
    encoder = RNNEncoder(rnn_type, 6, 4, num_layers=2, bidirectional=True, dropout=0.0).double()
    x = torch.randn(len(LENGTHS), int(LENGTHS.max()), 6, dtype=torch.float64)
    outputs, final = encoder(x, LENGTHS)
    ref_outputs, h_n, _ = packed_reference(encoder.rnn, x, LENGTHS)
    assert torch.allclose(outputs, ref_outputs, atol=1e-12)
    assert torch.allclose(final, torch.cat([h_n[-2], h_n[-1]], dim=-1), atol=1e-12)


def test_padding_values_do_not_reach_real_positions():
    torch.manual_seed(0)
    rnn = nn.GRU(6, 4, batch_first=True, bidirectional=True).double()
    x = torch.randn(len(LENGTHS), int(LENGTHS.max()), 6, dtype=torch.float64)
    noisy = x.clone()
    for row, n in enumerate(LENGTHS.tolist()):
        noisy[row, n:] = 100.0
    clean_out, clean_h, _ = padded_recurrence(rnn, x, LENGTHS)
    noisy_out, noisy_h, _ = padded_recurrence(rnn, noisy, LENGTHS)
    assert torch.equal(clean_out, noisy_out)
    assert torch.equal(clean_h, noisy_h)


def test_runs_under_cpu_bf16_autocast_close_to_fp32():
    torch.manual_seed(0)
    rnn = nn.GRU(16, 32, batch_first=True, bidirectional=True)
    x = torch.randn(len(LENGTHS), int(LENGTHS.max()), 16)
    full, full_h, _ = padded_recurrence(rnn, x, LENGTHS)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        half, half_h, _ = padded_recurrence(rnn, x, LENGTHS)
    assert half.dtype == torch.bfloat16
    assert (half.float() - full).abs().max() < 0.05
    assert (half_h.float() - full_h).abs().max() < 0.05


@pytest.mark.parametrize("cls", [nn.GRU, nn.LSTM])
def test_the_gpu_rnn_call_runs_in_fp32_under_autocast_with_bf16_states(cls):
    """run_cudnn_rnn (the GPU's encoder and Luong decoder calls) leaves autocast: cuDNN's autocast rule
    would run the RNN in fp16. Here on the CPU: bf16 initial states (as the decoder's bridge makes them
    under autocast) are cast back, and padded and packed inputs give exactly the fp32 call's results."""
    torch.manual_seed(0)
    rnn = cls(6, 5, num_layers=2, batch_first=True)
    x, lengths = torch.randn(3, 4, 6), torch.tensor([4, 2, 3])
    h0 = torch.randn(2, 3, 5)
    initial = (h0, torch.randn(2, 3, 5)) if cls is nn.LSTM else h0
    low = tuple(h.bfloat16() for h in initial) if cls is nn.LSTM else initial.bfloat16()
    packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    expected_padded = rnn(x, tuple(h.bfloat16().float() for h in initial) if cls is nn.LSTM else h0.bfloat16().float())
    expected_packed = rnn(packed)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        padded_out = run_cudnn_rnn(rnn, x, low)
        packed_out = run_cudnn_rnn(rnn, packed)
    assert padded_out[0].dtype == torch.float32 and packed_out[0].data.dtype == torch.float32
    torch.testing.assert_close(padded_out[0], expected_padded[0], rtol=0, atol=0)
    torch.testing.assert_close(packed_out[0].data, expected_packed[0].data, rtol=0, atol=0)
