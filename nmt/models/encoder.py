"""Bidirectional (or not) GRU/LSTM encoder that skips padding."""

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from nmt.models.recurrence import padded_recurrence, run_cudnn_rnn

RNN_TYPES = {"gru": nn.GRU, "lstm": nn.LSTM}


class RNNEncoder(nn.Module):
    """Reads embedded source sentences and returns one state per position plus a sentence summary.

    Padding never enters a real position (packing on a GPU, per-sentence reversal on the CPU), so a
    sentence's states do not depend on how long the other sentences in its batch are.
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

        `final` concatenates the last layer's final forward and backward states. On a GPU the RNN
        runs as one cuDNN call over the packed batch; on the CPU as `padded_recurrence`, the same
        maths without the packed backward's per-step zero fill (see nmt/models/recurrence.py).
        """
        batch, max_len, _ = embedded.shape
        if embedded.device.type == "cpu":
            outputs, hidden, _ = padded_recurrence(self.rnn, embedded, lengths)  # (B,S,D), (L*dirs,B,H)
        else:
            # pack_padded_sequence wants lengths on the CPU; one small copy per batch.
            packed = pack_padded_sequence(embedded, lengths.cpu(), batch_first=True, enforce_sorted=False)
            packed_out, hidden = run_cudnn_rnn(self.rnn, packed)  # cuDNN, fp32 under autocast too
            if isinstance(hidden, tuple):  # LSTM: (h, c); the summary uses h
                hidden = hidden[0]
            outputs, _ = pad_packed_sequence(packed_out, batch_first=True, total_length=max_len)  # (B,S,D)
        hidden = hidden.view(self.rnn.num_layers, self.num_directions, batch, -1)[-1]  # (dirs, B, H)
        final = torch.cat(list(hidden), dim=-1)  # (B, dirs * H)
        return outputs, final
