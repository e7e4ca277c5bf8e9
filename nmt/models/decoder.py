"""Attentional RNN decoders in the two classic styles.

Bahdanau et al. (2015): attend from the previous decoder state, feed the context into the RNN, and
predict from [previous embedding; new state; context].
Luong et al. (2015): run the RNN first, attend from its new state, and predict from the attentional
state tanh(W_c [context; state]); with input feeding that state also enters the next RNN step.

Both expose the same three methods, so the model and the search never ask which style they hold.
"""

import torch
from torch import Tensor, nn

from nmt.models.attention import Attention
from nmt.models.encoder import RNN_TYPES
from nmt.models.state import DecoderState


class RNNDecoder(nn.Module):
    """Common parts: the RNN, the bridge from the encoder summary to the initial state."""

    def __init__(self, rnn_type: str, emb_size: int, hidden_size: int, num_layers: int,
                 encoder_size: int, attention: Attention, dropout: float, rnn_input_size: int):
        super().__init__()
        self.attention = attention
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.is_lstm = rnn_type == "lstm"
        self.rnn = RNN_TYPES[rnn_type](rnn_input_size, hidden_size, num_layers, batch_first=True,
                                       dropout=dropout if num_layers > 1 else 0.0)
        # The bridge: the decoder starts from a learned function of the encoder summary.
        self.bridge = nn.Linear(encoder_size, num_layers * hidden_size)
        self.cell_bridge = nn.Linear(encoder_size, num_layers * hidden_size) if self.is_lstm else None
        self.dropout = nn.Dropout(dropout)
        self.output_size = hidden_size

    def init_state(self, encoder_final: Tensor, memory: Tensor, mask: Tensor) -> DecoderState:
        """encoder_final (B, D), memory (B, S, D), mask (B, S) -> the state before the first step."""
        batch = encoder_final.shape[0]

        def layered(layer: nn.Linear) -> Tensor:
            h = torch.tanh(layer(encoder_final))  # (B, L * H)
            return h.view(batch, self.num_layers, self.hidden_size).transpose(0, 1).contiguous()  # (L, B, H)

        cell = layered(self.cell_bridge) if self.is_lstm else None
        att_vector = memory.new_zeros(batch, self.hidden_size) if self.uses_att_vector else None
        return DecoderState(hidden=layered(self.bridge), cell=cell, att_vector=att_vector,
                            keys=self.attention.precompute_keys(memory), values=memory, mask=mask)

    uses_att_vector = False

    def _run_rnn(self, rnn_input: Tensor, state: DecoderState) -> tuple[Tensor, Tensor, Tensor | None]:
        """rnn_input (B, T, I) -> outputs (B, T, H), hidden (L, B, H), cell (L, B, H) | None."""
        if self.is_lstm:
            out, (hidden, cell) = self.rnn(rnn_input, (state.hidden, state.cell))
            return out, hidden, cell
        out, hidden = self.rnn(rnn_input, state.hidden)
        return out, hidden, None

    def step(self, embedded: Tensor, state: DecoderState) -> tuple[Tensor, DecoderState, Tensor]:
        """embedded (B, E) previous target token -> output (B, H_out), new state, weights (B, S)."""
        raise NotImplementedError

    def forward(self, embedded: Tensor, state: DecoderState) -> tuple[Tensor, Tensor]:
        """Teacher forcing over a whole target: embedded (B, T, E) -> outputs (B, T, H_out), weights (B, T, S)."""
        outputs, weights = [], []
        for t in range(embedded.shape[1]):
            out, state, w = self.step(embedded[:, t], state)
            outputs.append(out)
            weights.append(w)
        return torch.stack(outputs, dim=1), torch.stack(weights, dim=1)


class BahdanauDecoder(RNNDecoder):
    """Attention before the RNN step, from the previous state; context is an RNN input."""

    def __init__(self, rnn_type, emb_size, hidden_size, num_layers, encoder_size, attention, dropout,
                 input_feeding: bool = False):
        super().__init__(rnn_type, emb_size, hidden_size, num_layers, encoder_size, attention, dropout,
                         rnn_input_size=emb_size + attention.context_dim)
        # "Deep output": the prediction sees the previous word, the new state and the context.
        self.pre_output = nn.Linear(emb_size + hidden_size + attention.context_dim, hidden_size)

    def step(self, embedded, state):
        query = state.hidden[-1].unsqueeze(1)  # (B, 1, H) top layer, previous step
        context, weights = self.attention(query, state.keys, state.values, state.mask)  # (B,1,C), (B,1,S)
        rnn_input = torch.cat([embedded.unsqueeze(1), context], dim=-1)  # (B, 1, E + C)
        out, hidden, cell = self._run_rnn(rnn_input, state)  # out (B, 1, H)
        pre = torch.cat([embedded, out.squeeze(1), context.squeeze(1)], dim=-1)  # (B, E + H + C)
        output = self.dropout(torch.tanh(self.pre_output(pre)))  # (B, H)
        new_state = DecoderState(hidden, cell, None, state.keys, state.values, state.mask)
        return output, new_state, weights.squeeze(1)


class LuongDecoder(RNNDecoder):
    """Attention after the RNN step, from the current state; optional input feeding."""

    def __init__(self, rnn_type, emb_size, hidden_size, num_layers, encoder_size, attention, dropout,
                 input_feeding: bool = True):
        extra = hidden_size if input_feeding else 0
        super().__init__(rnn_type, emb_size, hidden_size, num_layers, encoder_size, attention, dropout,
                         rnn_input_size=emb_size + extra)
        self.input_feeding = input_feeding
        self.uses_att_vector = input_feeding
        self.combine = nn.Linear(attention.context_dim + hidden_size, hidden_size)

    def _attend(self, rnn_out: Tensor, state: DecoderState) -> tuple[Tensor, Tensor]:
        """rnn_out (B, T, H) -> attentional states (B, T, H), weights (B, T, S)."""
        context, weights = self.attention(rnn_out, state.keys, state.values, state.mask)  # (B,T,C), (B,T,S)
        att = torch.tanh(self.combine(torch.cat([context, rnn_out], dim=-1)))  # (B, T, H)
        return self.dropout(att), weights

    def step(self, embedded, state):
        rnn_input = embedded.unsqueeze(1)  # (B, 1, E)
        if self.input_feeding:
            rnn_input = torch.cat([rnn_input, state.att_vector.unsqueeze(1)], dim=-1)  # (B, 1, E + H)
        out, hidden, cell = self._run_rnn(rnn_input, state)  # (B, 1, H)
        att, weights = self._attend(out, state)  # (B, 1, H), (B, 1, S)
        att = att.squeeze(1)  # (B, H)
        new_state = DecoderState(hidden, cell, att if self.input_feeding else None,
                                 state.keys, state.values, state.mask)
        return att, new_state, weights.squeeze(1)

    def forward(self, embedded, state):
        if self.input_feeding:  # each step needs the previous attentional state
            return super().forward(embedded, state)
        # Without input feeding the RNN does not depend on attention: one RNN call for all steps
        # and one batched attention product for all target positions.
        out, _, _ = self._run_rnn(embedded, state)  # (B, T, H)
        return self._attend(out, state)


DECODER_STYLES = {"bahdanau": BahdanauDecoder, "luong": LuongDecoder}
