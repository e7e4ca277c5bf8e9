"""Attentional RNN decoders in the two classic styles.

Bahdanau et al. (2015): attend from the previous decoder state, feed the context into the RNN, and
predict from [previous embedding; new state; context].
Luong et al. (2015): run the RNN first, attend from its new state, and predict from the attentional
state tanh(W_c [context; state]); with input feeding that state also enters the next RNN step.

Both expose the same three methods, so the model and the search never ask which style they hold.

Structure. Under teacher forcing only what depends on the recurrence runs inside the step loop. The
RNN's input projection is linear, so W_ih [emb; x] = W_e emb + W_x x: the embedding block W_e emb (with
the bias) is computed for all target positions in one matrix product before the loop, and each step
adds only W_x x. The Bahdanau deep output reads the states but does not feed them, so it runs once
after the loop for all positions. The step itself (`_rnn_step`) is the RNN cell written out with the
`nn.GRU`/`nn.LSTM` parameters, so teacher forcing and `step` share one code path and the checkpoint
layout is that of the `nn` module. Per-position inputs are taken with `unbind`, whose backward writes
each gradient once (indexing `x[:, t]` would add a full-size gradient at every step), and the weights
applied at every step are `StepProduct`s, whose gradients are summed in one product per sequence.
"""

from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nmt.models.attention import Attention, SequenceProducts
from nmt.models.deferred import StepProduct
from nmt.models.dropout import Dropout, dropout
from nmt.models.encoder import RNN_TYPES
from nmt.models.recurrence import gru_update, lstm_update, run_cpu_rnn, run_cudnn_rnn
from nmt.models.state import DecoderState


@dataclass
class _StepWeights:
    """The products of one step: first-layer input weights on `extra` (None when there is none),
    each layer's W_hh h + b_hh, the input gates W_ih x + b_ih of layers above the first and, in
    teacher forcing (else None), the attention's products and the Luong combination W_c [c; h] + b."""

    extra: StepProduct | None
    hidden: list[StepProduct]
    below: list[StepProduct]
    attention: SequenceProducts | None = None
    combine: StepProduct | None = None


class RNNDecoder(nn.Module):
    """Common parts: the RNN, its step, and the bridge from the encoder summary to the initial state.

    The first layer's input is [embedding; extra], where extra is the context (Bahdanau), the previous
    attentional state (Luong with input feeding) or nothing.
    """

    uses_att_vector = False

    def __init__(self, rnn_type: str, emb_size: int, hidden_size: int, num_layers: int,
                 encoder_size: int, attention: Attention, dropout: float, rnn_input_size: int):
        super().__init__()
        self.attention = attention
        self.emb_size = emb_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.is_lstm = rnn_type == "lstm"
        self.rnn_dropout = dropout if num_layers > 1 else 0.0  # between stacked layers, as nn.GRU does
        self.rnn = RNN_TYPES[rnn_type](rnn_input_size, hidden_size, num_layers, batch_first=True,
                                       dropout=self.rnn_dropout)
        # The bridge: the decoder starts from a learned function of the encoder summary.
        self.bridge = nn.Linear(encoder_size, num_layers * hidden_size)
        self.cell_bridge = nn.Linear(encoder_size, num_layers * hidden_size) if self.is_lstm else None
        self.dropout = Dropout(dropout)
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

    def _attend_rows(self, query: Tensor, state: DecoderState, products: SequenceProducts | None = None
                     ) -> tuple[Tensor, Tensor]:
        """query (R, T, H) for the state's R rows -> context (R, T, C), weights (R, T, S).

        The rows_per_source hypotheses of a sentence attend as rows_per_source x T queries over the
        sentence's single copy of the encoder states (see DecoderState). `products`: the step loop's
        (teacher forcing), else None.
        """
        rows, steps, size = query.shape
        grouped = query.reshape(-1, state.rows_per_source * steps, size)  # (N, rows_per_source * T, H)
        context, weights = self.attention(grouped, state.keys, state.values, state.mask, products)
        return context.reshape(rows, steps, -1), weights.reshape(rows, steps, -1)  # (R, T, C), (R, T, S)

    def _input_gates(self, embedded: Tensor) -> Tensor:
        """The embedding's share of the first layer's input gates, bias included: (..., E) -> (..., G)."""
        return F.linear(embedded, self.rnn.weight_ih_l0[:, : self.emb_size], self.rnn.bias_ih_l0)

    def _step_weights(self, state: DecoderState | None = None, combine: nn.Linear | None = None
                      ) -> _StepWeights:
        """The products every step applies, made once per sequence (`StepProduct`: their weight
        gradients are summed in one product per sequence, and under autocast the weights are cast
        once; slicing the first layer's input weights at every step would also add a full-size
        weight gradient per step).

        With the `state` of teacher forcing (its encoder states and keys), the attention's products are
        ones too (`Attention.sequence_products`): autograd would otherwise add a gradient as large as
        all encoder states into their buffer at every target step (a third of the attention's
        backward on the CPU), and a weight gradient per step for the query projection; so is
        `combine`, a layer applied at every step.
        """
        rnn = self.rnn
        extra = rnn.weight_ih_l0[:, self.emb_size :]  # (G, I - E), acting on `extra`
        return _StepWeights(
            attention=None if state is None else self.attention.sequence_products(state.keys, state.values),
            combine=None if combine is None else StepProduct(combine.weight.t(), combine.bias),
            extra=StepProduct(extra.t()) if extra.shape[1] else None,
            hidden=[StepProduct(getattr(rnn, f"weight_hh_l{i}").t(), getattr(rnn, f"bias_hh_l{i}"))
                    for i in range(self.num_layers)],
            below=[StepProduct(getattr(rnn, f"weight_ih_l{i}").t(), getattr(rnn, f"bias_ih_l{i}"))
                   for i in range(1, self.num_layers)])

    def _rnn_step(self, gates_in: Tensor, state: DecoderState, step_weights: _StepWeights
                  ) -> tuple[Tensor, Tensor, Tensor | None]:
        """First layer input gates (B, G) -> top output (B, H), hidden (L, B, H), cell (L, B, H) | None."""
        hiddens, cells = [], []
        previous_cells = state.cell.unbind(0) if self.is_lstm else [None] * self.num_layers
        for layer, (hidden, cell) in enumerate(zip(state.hidden.unbind(0), previous_cells, strict=True)):
            if layer > 0:
                below = dropout(hiddens[-1], self.rnn_dropout, self.training)  # (B, H)
                gates_in = step_weights.below[layer - 1](below)  # (B, G)
            gates_h = step_weights.hidden[layer](hidden)  # (B, G)
            if self.is_lstm:
                hidden, cell = lstm_update(gates_in + gates_h, cell)
                cells.append(cell)
            else:
                hidden = gru_update(gates_in, gates_h, hidden)
            hiddens.append(hidden)
        return hiddens[-1], torch.stack(hiddens), torch.stack(cells) if self.is_lstm else None

    def _run_rnn(self, rnn_input: Tensor, state: DecoderState) -> Tensor:
        """The whole sequence in one RNN call (when no input depends on the previous output):
        rnn_input (B, T, I) -> top-layer outputs (B, T, H)."""
        initial = (state.hidden, state.cell) if self.is_lstm else state.hidden
        if rnn_input.device.type == "cpu":
            return run_cpu_rnn(self.rnn, rnn_input, initial)[0]
        return run_cudnn_rnn(self.rnn, rnn_input, initial)[0]  # cuDNN, fp32 under autocast too

    def step(self, embedded: Tensor, state: DecoderState) -> tuple[Tensor, DecoderState, Tensor]:
        """embedded (B, E) previous target token -> output (B, H_out), new state, weights (B, S)."""
        raise NotImplementedError

    def forward(self, embedded: Tensor, state: DecoderState) -> tuple[Tensor, Tensor]:
        """Teacher forcing over a whole target: embedded (B, T, E) -> outputs (B, T, H_out), weights (B, T, S)."""
        raise NotImplementedError


class BahdanauDecoder(RNNDecoder):
    """Attention before the RNN step, from the previous state; context is an RNN input."""

    def __init__(self, rnn_type, emb_size, hidden_size, num_layers, encoder_size, attention, dropout,
                 input_feeding: bool = False):
        super().__init__(rnn_type, emb_size, hidden_size, num_layers, encoder_size, attention, dropout,
                         rnn_input_size=emb_size + attention.context_dim)
        # "Deep output": the prediction sees the previous word, the new state and the context.
        self.pre_output = nn.Linear(emb_size + hidden_size + attention.context_dim, hidden_size)

    def _attend_and_step(self, emb_gates: Tensor, step_weights: _StepWeights, state: DecoderState
                         ) -> tuple[Tensor, Tensor, Tensor, DecoderState]:
        """emb_gates (B, G) -> top output (B, H), context (B, C), weights (B, S), new state."""
        query = state.hidden[-1].unsqueeze(1)  # (B, 1, H) top layer, previous step
        context, weights = self._attend_rows(query, state, step_weights.attention)  # (B, 1, C), (B, 1, S)
        context = context.squeeze(1)  # (B, C)
        gates = emb_gates + step_weights.extra(context)  # (B, G)
        out, hidden, cell = self._rnn_step(gates, state, step_weights)  # (B, H)
        new_state = replace(state, hidden=hidden, cell=cell)
        return out, context, weights.squeeze(1), new_state

    def _deep_output(self, embedded: Tensor, out: Tensor, context: Tensor) -> Tensor:
        """(..., E), (..., H), (..., C) -> dropout(tanh(W_p [emb; out; context] + b)) (..., H)."""
        # Under autocast the embedding is fp32 and the states bf16: concatenated as they are, the
        # (B, T, 1792) input would be built in fp32 and then cast again for the product.
        joined = torch.cat([embedded.to(out.dtype), out, context.to(out.dtype)], dim=-1)  # (..., E + H + C)
        return self.dropout(torch.tanh(self.pre_output(joined)))

    def step(self, embedded, state):
        out, context, attention, state = self._attend_and_step(self._input_gates(embedded),
                                                               self._step_weights(), state)
        return self._deep_output(embedded, out, context), state, attention

    def forward(self, embedded, state):
        step_weights = self._step_weights(state)
        outs, contexts, weights = [], [], []
        for emb_gates in self._input_gates(embedded).unbind(1):  # (B, G) per target position
            out, context, w, state = self._attend_and_step(emb_gates, step_weights, state)
            outs.append(out)
            contexts.append(context)
            weights.append(w)
        outs, contexts = torch.stack(outs, dim=1), torch.stack(contexts, dim=1)  # (B, T, H), (B, T, C)
        return self._deep_output(embedded, outs, contexts), torch.stack(weights, dim=1)  # (B,T,H), (B,T,S)


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

    def _attend(self, rnn_out: Tensor, state: DecoderState, step_weights: _StepWeights | None = None
                ) -> tuple[Tensor, Tensor]:
        """rnn_out (B, T, H) -> attentional states (B, T, H), weights (B, T, S); `step_weights` are
        the teacher-forced step loop's, else None."""
        products = None if step_weights is None else step_weights.attention
        context, weights = self._attend_rows(rnn_out, state, products)  # (B, T, C), (B, T, S)
        joined = torch.cat([context, rnn_out], dim=-1)  # (B, T, C + H)
        in_loop = step_weights is not None and step_weights.combine is not None
        combine = step_weights.combine if in_loop else self.combine  # W_c [c; h] + b
        return self.dropout(torch.tanh(combine(joined))), weights  # (B, T, H)

    def _step(self, emb_gates: Tensor, step_weights: _StepWeights, state: DecoderState
              ) -> tuple[Tensor, DecoderState, Tensor]:
        """emb_gates (B, G) -> attentional state (B, H), new state, weights (B, S)."""
        gates = emb_gates + step_weights.extra(state.att_vector) if self.input_feeding else emb_gates
        out, hidden, cell = self._rnn_step(gates, state, step_weights)  # (B, H)
        att, weights = self._attend(out.unsqueeze(1), state, step_weights)  # (B, 1, H), (B, 1, S)
        att = att.squeeze(1)  # (B, H)
        new_state = replace(state, hidden=hidden, cell=cell, att_vector=att if self.input_feeding else None)
        return att, new_state, weights.squeeze(1)

    def step(self, embedded, state):
        return self._step(self._input_gates(embedded), self._step_weights(), state)

    def forward(self, embedded, state):
        if not self.input_feeding:
            # The RNN does not depend on attention: one RNN call for all steps and one batched
            # attention product for all target positions.
            return self._attend(self._run_rnn(embedded, state), state)  # (B, T, H), (B, T, S)
        step_weights = self._step_weights(state, self.combine)
        outputs, weights = [], []
        for emb_gates in self._input_gates(embedded).unbind(1):  # (B, G) per target position
            att, state, w = self._step(emb_gates, step_weights, state)
            outputs.append(att)
            weights.append(w)
        return torch.stack(outputs, dim=1), torch.stack(weights, dim=1)  # (B, T, H), (B, T, S)


DECODER_STYLES = {"bahdanau": BahdanauDecoder, "luong": LuongDecoder}
