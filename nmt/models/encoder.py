"""Bidirectional (or not) GRU/LSTM encoder over packed sequences."""

import contextlib
from collections.abc import Iterator

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

RNN_TYPES = {"gru": nn.GRU, "lstm": nn.LSTM}


@contextlib.contextmanager
def native_cpu_rnn(x: Tensor) -> Iterator[None]:
    """Run `nn.GRU`/`nn.LSTM` on a CPU tensor `x` with PyTorch's own kernels, not oneDNN's.

    oneDNN builds a new RNN primitive for every new (batch, length) shape, 0.2-0.8 s each time, and
    length-bucketed batches change shape on nearly every step (that made CPU training ten times
    slower). Only the RNN call is switched: oneDNN stays on for the rest, where bf16 matrix products
    need it (without it they fall back to a kernel about 100 times slower). The backward pass follows
    the kernel the forward chose, so switching around the forward is enough.
    """
    if x.device.type != "cpu" or not torch.backends.mkldnn.enabled:
        yield
        return
    torch.backends.mkldnn.enabled = False
    try:
        yield
    finally:
        torch.backends.mkldnn.enabled = True


class RNNEncoder(nn.Module):
    """Reads embedded source sentences and returns one state per position plus a sentence summary.

    Packing makes the RNN skip padding, so a sentence's states do not depend on how long the other
    sentences in its batch are.
    """

    def __init__(self, rnn_type: str, emb_size: int, hidden_size: int, num_layers: int,
                 bidirectional: bool, dropout: float):
        super().__init__()
        self.rnn = RNN_TYPES[rnn_type](
            emb_size, hidden_size, num_layers, batch_first=True, bidirectional=bidirectional,
            dropout=dropout if num_layers > 1 else 0.0)
        self.num_directions = 2 if bidirectional else 1
        self.output_size = hidden_size * self.num_directions

    def forward(self, embedded: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """embedded (B, S, E), lengths (B,) -> outputs (B, S, D) and final (B, D), D = output_size.

        `final` concatenates the last layer's final forward and backward states.
        """
        batch, max_len, _ = embedded.shape
        # pack_padded_sequence wants lengths on the CPU; one small copy per batch.
        packed = pack_padded_sequence(embedded, lengths.cpu(), batch_first=True, enforce_sorted=False)
        with native_cpu_rnn(embedded):
            packed_out, hidden = self.rnn(packed)
        if isinstance(hidden, tuple):  # LSTM: (h, c); the summary uses h
            hidden = hidden[0]
        outputs, _ = pad_packed_sequence(packed_out, batch_first=True, total_length=max_len)  # (B, S, D)
        hidden = hidden.view(self.rnn.num_layers, self.num_directions, batch, -1)[-1]  # (dirs, B, H)
        final = torch.cat(list(hidden), dim=-1)  # (B, dirs * H)
        return outputs, final
