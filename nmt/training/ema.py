"""An exponential moving average (EMA) of the weights during training (`trainer.ema_decay`).

After every update the average moves towards the new weights: avg <- d * avg + (1 - d) * weights.
Validation, best.pt and the kept step-<S>.pt files use the average, which is smoother than the
weights of any one update (the practice of fairseq's --ema-decay and OpenNMT-py's average_decay);
training goes on from the weights themselves. After n updates the decay is min(d, (1 + n) / (10 + n)),
so the average soon forgets the random initial weights and then covers the last ~n/9 updates until
the decay reaches d (0.999 after 8,990 updates).

In a checkpoint the average is "model" (what nmt-evaluate, nmt-translate and nmt-average load) and
the weights that training continues from are "training_weights".
"""

import contextlib

import torch


class WeightAverage:
    """The EMA of a model's floating-point parameters and buffers, kept in float32 beside it."""

    def __init__(self, model: torch.nn.Module, decay: float):
        self.decay = decay
        self.average = {name: value.detach().float().clone() for name, value in _averaged(model)}

    def step_decay(self, step: int) -> float:
        """The decay of the update after `step` earlier ones: warmed up over the first updates, then `decay`."""
        return min(self.decay, (1 + step) / (10 + step))

    @torch.no_grad()
    def update(self, model: torch.nn.Module, step: int) -> None:
        """Moves the average towards the model's current weights, after the optimizer step that follows
        `step` earlier updates (the run's update count, so a resumed run goes on with the same decay)."""
        weight = 1.0 - self.step_decay(step)
        values = [value.float() for _, value in _averaged(model)]
        # One fused kernel per group of tensors on CUDA, instead of one per tensor.
        torch._foreach_lerp_(list(self.average.values()), values, weight)

    def state_dict(self, model: torch.nn.Module) -> dict[str, torch.Tensor]:
        """`model`'s state dict with the averaged values in place, each in the model's dtype."""
        return {name: self.average[name].to(value.dtype) if name in self.average else value
                for name, value in model.state_dict().items()}

    @contextlib.contextmanager
    def applied(self, model: torch.nn.Module):
        """Puts the average into `model` for the duration (validation, saving), then the weights back."""
        weights = {name: value.detach().clone() for name, value in model.state_dict().items()}
        model.load_state_dict(self.state_dict(model))
        try:
            yield model
        finally:
            model.load_state_dict(weights)

    def load(self, averaged_state: dict[str, torch.Tensor]) -> None:
        """Restores the average from a checkpoint's "model" entry."""
        for name, value in self.average.items():
            value.copy_(averaged_state[name])


def scored_state(model: torch.nn.Module, ema: WeightAverage | None) -> dict[str, torch.Tensor]:
    """The state dict that validation scores and checkpoints save as "model": the average's with an
    `ema`, the model's own without."""
    return model.state_dict() if ema is None else ema.state_dict(model)


def _averaged(model: torch.nn.Module):
    """(name, tensor) of the state entries that are averaged: the floating-point ones."""
    return ((name, value) for name, value in model.state_dict().items() if value.is_floating_point())
