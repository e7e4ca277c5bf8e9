"""The decoder's state between steps, kept in one place so search can reorder it blindly."""

from dataclasses import dataclass, replace

import torch
from torch import Tensor


@dataclass
class DecoderState:
    """Everything a decoder step needs besides the previous token.

    The R rows of the state are hypotheses; the source tensors hold one row per source sentence, and
    row r belongs to sentence r // rows_per_source. Beam search keeps its K hypotheses of a sentence
    next to each other, so the encoder states are stored once per sentence instead of K times (and
    not copied at every step when the beams are reordered).

    hidden, cell: (L, R, H) RNN state (cell only for LSTM).
    att_vector:   (R, H) previous attentional vector (Luong input feeding), else None.
    keys:         (N, S, *) encoder states after the attention's precompute_keys (done once).
    values:       (N, S, D) encoder states.
    mask:         (N, S) bool, True on real source tokens.
    rows_per_source: R // N.
    """

    hidden: Tensor
    cell: Tensor | None
    att_vector: Tensor | None
    keys: Tensor
    values: Tensor
    mask: Tensor
    rows_per_source: int = 1

    def index_select(self, index: Tensor) -> "DecoderState":
        """Row i of the result is row index[i] of this state (beam expansion and reordering).

        When every new row stays with its sentence (rows i and index[i] belong to sentence
        i // (len(index) / N)), the source tensors are shared, not copied. Checking that reads the
        index on the host: free on the CPU, one synchronisation on a GPU.
        """
        pick0 = lambda t: None if t is None else t.index_select(0, index)  # noqa: E731
        pick1 = lambda t: None if t is None else t.index_select(1, index)  # noqa: E731
        rows, sources = index.numel(), self.mask.shape[0]
        sentence = torch.div(index, self.rows_per_source, rounding_mode="floor")  # (R',) of each new row
        new_rows = replace(self, hidden=pick1(self.hidden), cell=pick1(self.cell),
                           att_vector=pick0(self.att_vector))
        if rows % sources == 0:
            per_source = rows // sources
            grouped = torch.arange(rows, device=index.device) // per_source  # (R',)
            if torch.equal(sentence, grouped):
                return replace(new_rows, rows_per_source=per_source)
        return replace(new_rows, keys=self.keys.index_select(0, sentence),
                       values=self.values.index_select(0, sentence), mask=self.mask.index_select(0, sentence),
                       rows_per_source=1)
