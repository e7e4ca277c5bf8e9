"""Dropout whose mask is drawn from uniform floats on the CPU.

`F.dropout` draws its mask with `bernoulli_`, which on the CPU costs about 7.6 ns per element (2
cores); `torch.rand` draws a million floats in 2.3 ms, a third of that. Comparing them with p gives
the same distribution: each unit is kept with probability 1 - p and scaled by 1 / (1 - p). Forward
with backward: 4.8 against 9.4 ms for a (186, 21, 256) bf16 tensor, 0.93 against 1.23 ms for a
(186, 512) one. Elsewhere (a GPU) `F.dropout` is one fused kernel and stays.
"""

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def dropout(x: Tensor, p: float, training: bool) -> Tensor:
    """F.dropout(x, p, training) in distribution."""
    if not training or p == 0:
        return x
    if x.device.type != "cpu" or p >= 1:
        return F.dropout(x, p, True)
    scale = (torch.rand(x.shape) >= p).to(x.dtype).mul_(1 / (1 - p))  # 0 or 1 / (1 - p) per unit
    return x * scale


class Dropout(nn.Dropout):
    """nn.Dropout drawing its mask as `dropout` does; the same module otherwise."""

    def forward(self, x: Tensor) -> Tensor:
        return dropout(x, self.p, self.training)
