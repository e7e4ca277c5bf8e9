"""The decoder's state between steps, kept in one place so search can reorder it blindly."""

from dataclasses import dataclass, replace

from torch import Tensor


@dataclass
class DecoderState:
    """Everything a decoder step needs besides the previous token.

    hidden, cell: (L, B, H) RNN state (cell only for LSTM).
    att_vector:   (B, H) previous attentional vector (Luong input feeding), else None.
    keys:         (B, S, *) encoder states after the attention's precompute_keys (done once).
    values:       (B, S, D) encoder states.
    mask:         (B, S) bool, True on real source tokens.
    """

    hidden: Tensor
    cell: Tensor | None
    att_vector: Tensor | None
    keys: Tensor
    values: Tensor
    mask: Tensor

    def index_select(self, index: Tensor) -> "DecoderState":
        """Row i of the result is row index[i] of this state (beam expansion and reordering)."""
        pick0 = lambda t: None if t is None else t.index_select(0, index)  # noqa: E731
        pick1 = lambda t: None if t is None else t.index_select(1, index)  # noqa: E731
        return replace(self, hidden=pick1(self.hidden), cell=pick1(self.cell),
                       att_vector=pick0(self.att_vector), keys=pick0(self.keys),
                       values=pick0(self.values), mask=pick0(self.mask))
