"""RNN cells written out with the parameters of `nn.GRU`/`nn.LSTM`, a padded bidirectional
recurrence built from them for the CPU, `run_cpu_rnn` for the one whole-sequence `nn` RNN call
left on the CPU (the Luong decoder without input feeding), and `run_cudnn_rnn` for the GPU's cuDNN calls.

Why the CPU encoder does not call `nn.GRU` on a packed batch: PyTorch's native backward of a packed
RNN writes a zero-filled gradient as large as the whole packed input gates (tokens x 3H) at every
time step and adds it up, so the encoder's backward grows with tokens x steps (profile in
BENCHMARKS.md). Here both directions run together as one batched product per step, on the padded
batch: the backward direction reads each sentence reversed within its own length, so padding never
enters a real position, and each sentence's final state is taken at its last real position. The
recurrent weights' gradients are summed once per sequence (`StepProduct`). The
result equals the packed `nn.GRU`/`nn.LSTM` (tests/test_recurrence.py), and the parameters are the
module's own, so checkpoints do not change.
"""

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence

from nmt.models.deferred import StepProduct
from nmt.models.dropout import dropout
from nmt.models.fusion import fusable


@fusable
def gru_update(gates_in: Tensor, gates_h: Tensor, hidden: Tensor) -> Tensor:
    """One GRU step from its two gate products (PyTorch's gate order r, z, n).

    gates_in (..., 3H) = W_ih x + b_ih, gates_h (..., 3H) = W_hh h + b_hh, hidden (..., H) -> (..., H).
    """
    size = hidden.shape[-1]
    reset, update = torch.sigmoid(gates_in[..., : 2 * size] + gates_h[..., : 2 * size]).chunk(2, dim=-1)
    new = torch.tanh(torch.addcmul(gates_in[..., 2 * size :], reset, gates_h[..., 2 * size :]))  # (..., H)
    return torch.lerp(new, hidden, update)  # (1 - z) n + z h


@fusable
def lstm_update(gates: Tensor, cell: Tensor) -> tuple[Tensor, Tensor]:
    """One LSTM step (gate order i, f, g, o): gates (..., 4H) = W_ih x + b_ih + W_hh h + b_hh,
    cell (..., H) -> new hidden and cell (..., H)."""
    size = cell.shape[-1]
    in_gate, forget = torch.sigmoid(gates[..., : 2 * size]).chunk(2, dim=-1)  # (..., H) each
    cell = torch.addcmul(forget * cell, in_gate, torch.tanh(gates[..., 2 * size : 3 * size]))  # (..., H)
    return torch.sigmoid(gates[..., 3 * size :]) * torch.tanh(cell), cell


def run_cpu_rnn(rnn: nn.RNNBase, x: Tensor, hx=None):
    """`rnn(x, hx)` for a whole padded sequence on the CPU, with PyTorch's own kernels, in fp32,
    whatever the autocast state (the Luong decoder without input feeding makes this call).

    oneDNN builds a new RNN primitive for every new (batch, length) shape, 0.2-0.8 s each time, and
    length-bucketed batches change shape on nearly every step (that made CPU training ten times
    slower), so it is switched off for this call only: it stays on for the rest, where bf16 matrix
    products need it. Under bf16 autocast the native kernels' per-step products would run in bf16
    without oneDNN, on a kernel far slower than fp32 (7 against ~150 GFLOP/s measured, see
    BENCHMARKS.md), so the RNN runs in fp32 (inputs cast to the weights' dtype). The backward
    follows the kernels the forward chose.
    """
    dtype = rnn.weight_hh_l0.dtype
    if hx is not None:
        hx = tuple(h.to(dtype) for h in hx) if isinstance(hx, tuple) else hx.to(dtype)
    was_enabled = torch.backends.mkldnn.enabled
    torch.backends.mkldnn.enabled = False
    try:
        with torch.autocast("cpu", enabled=False):
            return rnn(x.to(dtype), hx)
    finally:
        torch.backends.mkldnn.enabled = was_enabled


def run_cudnn_rnn(rnn: nn.RNNBase, x: Tensor | PackedSequence, hx=None):
    """`rnn(x, hx)` on a GPU (x padded or packed), in the weights' dtype (fp32) whatever the autocast state.

    Autocast's rule for cuDNN RNNs casts the input, the states and the weights to fp16 even when
    autocast asked for bf16 (PyTorch's aten/src/ATen/cudnn/AutocastRNN.cpp). bf16 training has no loss
    scaler, and the encoder's output gradients lie mostly below fp16's normal range (median about 5e-7
    on the reference model), so in fp16 they would lose precision or vanish. In fp32 cuDNN still uses
    TF32 tensor cores where `torch.backends.cudnn.allow_tf32` allows (the default).
    """
    dtype = rnn.weight_hh_l0.dtype
    device_type = (x.data if isinstance(x, PackedSequence) else x).device.type
    if hx is not None:
        hx = tuple(h.to(dtype) for h in hx) if isinstance(hx, tuple) else hx.to(dtype)
    with torch.autocast(device_type, enabled=False):
        return rnn(x.to(dtype), hx)


def reversal_index(lengths: Tensor, max_len: int) -> Tensor:
    """lengths (B,) -> index (B, S) that reverses each row within its length; padding stays put.

    The map is its own inverse, so the same index turns reversed outputs back.
    """
    steps = torch.arange(max_len, device=lengths.device)  # (S,)
    reversed_steps = lengths[:, None] - 1 - steps  # (B, S)
    return torch.where(reversed_steps >= 0, reversed_steps, steps)


def _take_rows(x: Tensor, index: Tensor) -> Tensor:
    """x (B, S, F), index (B, S) -> x[b, index[b, s]] (B, S, F)."""
    return x[torch.arange(x.shape[0], device=x.device)[:, None], index]


def padded_recurrence(rnn: nn.GRU | nn.LSTM, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor, Tensor | None]:
    """What `rnn` (batch_first, from a zero state) gives on the packed batch, computed on the padded one.

    x (B, S, I), lengths (B,) -> outputs (B, S, D) with zeros at padding, D = dirs * H; final hidden
    (L * dirs, B, H) and, for an LSTM, final cell (L * dirs, B, H), ordered as `nn.GRU`'s h_n.
    """
    is_lstm = isinstance(rnn, nn.LSTM)
    dirs = 2 if rnn.bidirectional else 1
    batch, max_len, _ = x.shape
    lengths = lengths.to(x.device)
    mask = (torch.arange(max_len, device=x.device) < lengths[:, None]).unsqueeze(-1)  # (B, S, 1)
    reverse = reversal_index(lengths, max_len) if dirs == 2 else None  # (B, S)
    last = (torch.arange(batch, device=x.device), lengths - 1)  # each sentence's last real position
    final_h, final_c = [], []
    layer_input = x
    for layer in range(rnn.num_layers):
        if layer > 0:
            layer_input = dropout(layer_input, rnn.dropout, rnn.training)
        suffixes = [f"_l{layer}", f"_l{layer}_reverse"][:dirs]
        inputs = [layer_input, _take_rows(layer_input, reverse)] if dirs == 2 else [layer_input]
        gates_in = torch.stack([F.linear(inp, getattr(rnn, "weight_ih" + s), getattr(rnn, "bias_ih" + s))
                                for inp, s in zip(inputs, suffixes, strict=True)])  # (dirs, B, S, G)
        recurrent = StepProduct(torch.stack([getattr(rnn, "weight_hh" + s) for s in suffixes]).transpose(1, 2),
                                torch.stack([getattr(rnn, "bias_hh" + s) for s in suffixes]).unsqueeze(1))
        hidden = gates_in.new_zeros(dirs, batch, rnn.hidden_size)  # (dirs, B, H)
        cell = torch.zeros_like(hidden) if is_lstm else None
        outputs, cells = [], []
        for step_gates in gates_in.unbind(2):  # (dirs, B, G) per position
            gates_h = recurrent(hidden)  # (dirs, B, G) = W_hh h + b_hh per direction
            if is_lstm:
                hidden, cell = lstm_update(step_gates + gates_h, cell)
                cells.append(cell)
            else:
                hidden = gru_update(step_gates, gates_h, hidden)
            outputs.append(hidden)
        states = torch.stack(outputs, dim=2)  # (dirs, B, S, H)
        final_h.append(states[:, last[0], last[1]])  # (dirs, B, H)
        if is_lstm:
            final_c.append(torch.stack(cells, dim=2)[:, last[0], last[1]])  # (dirs, B, H)
        per_direction = [states[0], _take_rows(states[1], reverse)] if dirs == 2 else [states[0]]
        layer_input = torch.cat(per_direction, dim=-1) * mask  # (B, S, D)
    final_cell = torch.cat(final_c) if is_lstm else None
    return layer_input, torch.cat(final_h), final_cell
