"""Element-wise hot spots that `torch.compile` can fuse, run eagerly unless fusion is switched on.

On a CPU, the step loops of training are many small element-wise operations (a GRU update is nine
of them, each a pass over memory with its own autograd node), and the label-smoothed loss makes
several passes over every (rows x vocabulary) slice. Inductor turns each such function into one or
two vectorised C++ loops, forward and backward, for every batch shape (`dynamic=True`). Measured on
the 2-core CPU: +10-15% bf16 training throughput for the reference model, ~15-30 s of compilation
at the first batch (BENCHMARKS.md).

A function marked `@fusable` runs as written by default, so tests, inference and machines without a
C++ compiler never compile. Inside `with fusion(True):` it runs through `torch.compile`. The trainer
switches it on for `trainer.compile` (see `fusion_wanted`); the maths is the same either way, but the
fused kernels round in a different order, so results agree to rounding, not bit for bit.
"""

import contextlib
import functools
import logging
import os
import shutil

import torch

from nmt.errors import ConfigError

log = logging.getLogger(__name__)

_enabled = False

# One fused function meets several input variants in a run, each compiled once: the GRU update saw
# 7 in a 60-update fine-tuning run (with and without gradients, in autocast or not, the encoder's 3-D
# and the decoder's 2-D states, views of different bases) and a 9th at update 1,642 of a longer one,
# which torch's default limit of 8 left to run eagerly, with a warning in the middle of training.
RECOMPILE_LIMIT = 64


def _allow_recompiles() -> None:
    config = torch._dynamo.config
    name = "recompile_limit" if hasattr(config, "recompile_limit") else "cache_size_limit"  # torch < 2.6
    setattr(config, name, max(getattr(config, name), RECOMPILE_LIMIT))


def fusable(fn=None, *, fused_form=None):
    """Decorator: `fn` as written, or `torch.compile(fn, dynamic=True)` while fusion is on.

    `@fusable(fused_form=g)` compiles `g` instead: the same function written the way the compiler
    makes faster code of, where that way would be slower run eagerly (more operations).
    """
    if fn is None:
        return functools.partial(fusable, fused_form=fused_form)
    compiled = None

    @functools.wraps(fn)
    def run(*args):
        nonlocal compiled
        if not _enabled:
            return fn(*args)
        if compiled is None:
            _allow_recompiles()
            compiled = torch.compile(fused_form or fn, dynamic=True)
        return compiled(*args)

    return run


def fusion_enabled() -> bool:
    """Whether `@fusable` functions run compiled right now."""
    return _enabled


@contextlib.contextmanager
def fusion(enabled: bool):
    """Runs `@fusable` functions compiled (enabled=True) or as written inside the block."""
    global _enabled
    before, _enabled = _enabled, enabled
    try:
        yield
    finally:
        _enabled = before


def compiler_available() -> bool:
    """Inductor's CPU kernels are C++ compiled at run time: is there a compiler to do it?"""
    return shutil.which(os.environ.get("CXX", "c++")) is not None or shutil.which("g++") is not None


def _probe(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return torch.tanh(x * y).sum()


@functools.cache
def compile_failure(device_type: str) -> str | None:
    """None when torch.compile builds and runs a small function and its gradient on this device;
    otherwise what went wrong (a compiler that fails, headers missing, an unsupported platform)."""
    if device_type == "cpu" and not compiler_available():
        return "no C++ compiler (g++ or $CXX) for its CPU kernels"
    try:
        x = torch.randn(4, 3, device=device_type, requires_grad=True)
        torch.compile(_probe, dynamic=True)(x, torch.randn(4, 3, device=device_type)).backward()
    except Exception as exc:  # whatever the backend raises, training goes on without it (auto)
        return f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0][:200]}"
    return None


def fusion_wanted(setting, device: torch.device) -> bool:
    """`trainer.compile` (checked by nmt.training.options): auto is on for CPU training when
    torch.compile works here (off with a warning when it does not) and off on CUDA, where it has not
    been measured yet; true is on, or a ConfigError saying why it cannot be; false is off."""
    if setting is False or (setting == "auto" and device.type != "cpu"):
        return False
    failure = compile_failure(device.type)
    if failure is None:
        return True
    if setting == "auto":
        log.warning("trainer.compile=auto: training without torch.compile (%s)", failure)
        return False
    raise ConfigError(f"trainer.compile=true, but torch.compile does not work here ({failure}); "
                      "set trainer.compile=false")
