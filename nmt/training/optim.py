"""Optimizers and learning-rate schedules (linear warmup, then plateau, inverse-sqrt or cosine decay)."""

import math
from collections.abc import Mapping

import torch

from nmt.errors import ConfigError
from nmt.values import is_int

OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}


def build_optimizer(cfg: Mapping, params) -> torch.optim.Optimizer:
    name = cfg["name"]
    if name not in OPTIMIZERS:
        raise ConfigError(f"optimizer.name={name!r} is not valid; choose one of: {', '.join(OPTIMIZERS)}")
    params = list(params)
    # One fused kernel per parameter instead of a dozen element-wise passes (CPU and CUDA alike).
    fused = all(p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in params)
    return OPTIMIZERS[name](params, lr=cfg["lr"], betas=tuple(cfg["betas"]), weight_decay=cfg["weight_decay"],
                            fused=fused or None)


class WarmupSchedule:
    """Sets the learning rate after every update: base_lr x warmup ramp x decay.

    Subclasses define the decay; `on_validation` lets a schedule react to validation scores.
    State is plain numbers so checkpoints stay weights-only. A checkpoint restores only the progress
    (`PROGRESS`), never the settings: a run resumed with another optimizer.lr or scheduler.* option
    goes on from where it was with the new values, e.g. a lower rate after a divergence.
    """

    PROGRESS: tuple[str, ...] = ("step_count",)

    def __init__(self, optimizer: torch.optim.Optimizer, warmup_steps: int):
        self.optimizer = optimizer
        self.base_lr = optimizer.param_groups[0]["lr"]
        self.warmup_steps = warmup_steps
        self.step_count = 0
        self._apply()

    def decay(self) -> float:
        return 1.0

    def lr(self) -> float:
        warmup = min(1.0, (self.step_count + 1) / self.warmup_steps) if self.warmup_steps else 1.0
        return self.base_lr * warmup * self.decay()

    def _apply(self) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr()

    def step(self) -> None:
        self.step_count += 1
        self._apply()

    def on_validation(self, score: float) -> None:
        """Called with the validation score (higher is better) after each validation."""

    def plan(self, total_steps: int | float) -> None:
        """Called once the trainer knows how many updates the run will make (inf: no bound)."""

    @property
    def needs_plan(self) -> bool:
        """True while the schedule lacks a last update that its decay depends on."""
        return False

    def state_dict(self) -> dict:
        return {k: v for k, v in vars(self).items() if k != "optimizer"}

    def load_state_dict(self, state: Mapping) -> None:
        for key in self.PROGRESS:
            if key in state:  # a checkpoint of another schedule lacks some; they keep their start values
                setattr(self, key, state[key])
        self._apply()


class PlateauSchedule(WarmupSchedule):
    """Multiplies the rate by `factor` at the (patience + 1)-th validation in a row without a better
    score, as torch's ReduceLROnPlateau does (trainer.early_stopping_patience=N stops at the N-th).
    The decay is a factor of the base rate, so a new optimizer.lr on resume keeps the decays so far."""

    PROGRESS = ("step_count", "scale", "best", "bad_validations")

    def __init__(self, optimizer, warmup_steps: int, factor: float, patience: int, min_lr: float):
        self.factor, self.patience, self.min_lr = factor, patience, min_lr
        self.scale, self.best, self.bad_validations = 1.0, -math.inf, 0
        super().__init__(optimizer, warmup_steps)

    def decay(self) -> float:
        return max(self.scale, self.min_lr / self.base_lr)

    def on_validation(self, score: float) -> None:
        if score > self.best:
            self.best, self.bad_validations = score, 0
            return
        self.bad_validations += 1
        if self.bad_validations > self.patience:
            self.scale *= self.factor
            self.bad_validations = 0
            self._apply()


class InverseSqrtSchedule(WarmupSchedule):
    """After warmup the rate falls as 1/sqrt(step), equal to base_lr at the end of warmup."""

    def decay(self) -> float:
        warm = max(self.warmup_steps, 1)
        return min(1.0, math.sqrt(warm / max(self.step_count + 1, 1)))


class CosineSchedule(WarmupSchedule):
    """After warmup the rate falls along half a cosine from base_lr to min_lr at the run's last update.

    The last update is `total_steps` when set, else the trainer's bound (trainer.max_steps, or
    trainer.max_epochs x updates per epoch), so a run that ends on its bound ends fully annealed.
    """

    # The planned last update is progress: a run resumed inside a subword-sampled epoch keeps that
    # epoch's plan (the trainer plans again at the next epoch).
    PROGRESS = ("step_count", "total_steps")

    def __init__(self, optimizer, warmup_steps: int, min_lr: float, total_steps: int | None):
        self.min_lr, self.fixed_total, self.total_steps = min_lr, total_steps, total_steps
        super().__init__(optimizer, warmup_steps)

    def load_state_dict(self, state: Mapping) -> None:
        super().load_state_dict(state)
        if self.fixed_total is not None:  # scheduler.total_steps, as given now, wins over the saved plan
            self.total_steps = self.fixed_total
            self._apply()

    @property
    def needs_plan(self) -> bool:
        # e.g. resumed from a plateau checkpoint, which holds no planned end
        return self.total_steps is None

    def plan(self, total_steps):
        # A bound raised on resume stretches the curve (the rate rises a little to meet it).
        if self.fixed_total is None and math.isfinite(total_steps):
            self.total_steps = int(total_steps)
            self._apply()

    def decay(self) -> float:
        if not self.total_steps:
            return 1.0  # no bound known yet: the warmup alone
        span = max(self.total_steps - self.warmup_steps, 1)
        # The warmup's last update runs at base_lr; the decay starts with the next and ends on the last.
        progress = min(max(self.step_count + 1 - self.warmup_steps, 0) / span, 1.0)
        floor = min(self.min_lr / self.base_lr, 1.0)
        return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


SCHEDULES = ("plateau", "inverse_sqrt", "cosine")


def build_schedule(cfg: Mapping, optimizer: torch.optim.Optimizer) -> WarmupSchedule:
    name = cfg["name"]
    if name == "plateau":
        return PlateauSchedule(optimizer, cfg["warmup_steps"], cfg["factor"], cfg["patience"], cfg["min_lr"])
    if name == "inverse_sqrt":
        return InverseSqrtSchedule(optimizer, cfg["warmup_steps"])
    if name == "cosine":
        total = cfg.get("total_steps")
        if total is not None and not (is_int(total) and total > 0):
            raise ConfigError(f"scheduler.total_steps must be null or a positive integer; got {total!r}")
        return CosineSchedule(optimizer, cfg["warmup_steps"], cfg["min_lr"], total)
    raise ConfigError(f"scheduler.name={name!r} is not valid; choose one of: {', '.join(SCHEDULES)}")
