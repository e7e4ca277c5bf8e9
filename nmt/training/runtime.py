"""Device choice, seeding and mixed precision."""

import contextlib
import ctypes
import os
import random
import sys

import numpy as np
import torch

from nmt.errors import ConfigError

DEVICE_TYPES = ("cpu", "cuda")  # what the commands run on; torch knows more (mps, xpu, meta) that they cannot


def resolve_device(name: str) -> torch.device:
    """`auto` picks CUDA when present; an explicit CUDA request without that GPU is a ConfigError, and
    so is any device the commands do not run on (mps, xpu, meta), which would fail later with a traceback."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    refusal = ConfigError(f"device={name!r} is not valid; use auto, cpu, cuda or cuda:N")
    if not isinstance(name, str):  # device=0 would be torch's cuda:0
        raise refusal
    try:
        device = torch.device(name)
    except RuntimeError:
        raise refusal from None
    if device.type not in DEVICE_TYPES or (device.type == "cpu" and device.index not in (None, 0)):
        raise refusal
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device={name} was requested but no CUDA GPU is available; use device=cpu")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        count = torch.cuda.device_count()
        visible = "1 GPU, cuda:0" if count == 1 else f"{count} GPUs, cuda:0 to cuda:{count - 1}"
        raise ConfigError(f"device={name}: there is no GPU {device.index}; this machine has {visible}")
    return device


def seed_everything(seed: int, num_threads: int | None = None) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if num_threads:
        torch.set_num_threads(num_threads)


def autocast_context(device: torch.device, precision: str):
    """bf16 autocast on CUDA for `auto`/`bf16`, on the CPU for `bf16` only; full precision otherwise.
    (On a CPU with bf16 instructions, bf16 trains the reference model 1.3-2.4x faster than fp32 and
    trains it stably; without them it is 3x slower. `auto` stays fp32 on the CPU: see BENCHMARKS.md.)"""
    if precision not in ("auto", "fp32", "bf16"):
        raise ConfigError(f"trainer.precision={precision!r} is not valid; choose one of: auto, fp32, bf16")
    if device.type == "cuda" and precision in ("auto", "bf16"):
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    if device.type == "cpu" and precision == "bf16":
        return torch.autocast(device_type="cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


# Without bf16 instructions (AVX512-BF16, AMX, or AVX-NE-CONVERT) an x86 CPU emulates bf16 products:
# the reference model trained at 838 target tokens/s in bf16 against 2,727 in fp32 on a 2-core Xeon
# that exposes AVX-512 but neither (BENCHMARKS.md, fifth round).
_NATIVE_BF16_FEATURES = ("avx512_bf16", "amx_bf16", "avx_ne_convert")


def cpu_has_native_bf16() -> bool | None:
    """Whether this x86 CPU computes bf16 products in hardware; None where torch cannot say (other
    architectures, or a torch without `torch.cpu.get_capabilities`)."""
    get_capabilities = getattr(torch.cpu, "get_capabilities", None)
    if get_capabilities is None:
        return None
    capabilities = get_capabilities()
    if capabilities.get("architecture") != "x86_64":
        return None
    return any(capabilities.get(feature, False) for feature in _NATIVE_BF16_FEATURES)


def slow_bf16_warning(device: torch.device, precision: str) -> str | None:
    """The one-line warning for bf16 asked of a CPU that would emulate it, else None."""
    if device.type != "cpu" or precision != "bf16" or cpu_has_native_bf16() is not False:
        return None
    return ("trainer.precision=bf16: this CPU has no bf16 instructions (AVX512-BF16, AMX or AVX-NE-CONVERT), so bf16 "
            "products are emulated, about 3x slower than fp32; use trainer.precision=fp32 (or auto) here")


# oneDNN keeps every matrix-product primitive it builds (bf16 products on the CPU go through it), each
# with its own reordered copy of the weights, up to ONEDNN_PRIMITIVE_CACHE_CAPACITY; building one costs
# 2-14 ms on an AMX Xeon against 0.3-3 ms for a cached call. When the output layer's rows came as a new
# count at every update, its 8 MB primitives piled up: a 20-epoch bf16 run reached 7.8 GB at 1,024,
# so the cap was 128. Since those rows come in a few sizes (step.output_positions), an epoch's
# ~1,000 primitives fit in 1,024 and memory stays flat (2.3 GB over 9 epochs of the reference, against
# 3.0 GB at 128 over 3), for 8-10% more bf16 training speed there (BENCHMARKS.md, ninth round).
ONEDNN_CACHE_VARIABLE = "ONEDNN_PRIMITIVE_CACHE_CAPACITY"
ONEDNN_CACHE_CAPACITY = 1024


def bound_onednn_cache() -> None:
    """Caps oneDNN's primitive cache unless the user set ONEDNN_PRIMITIVE_CACHE_CAPACITY themselves.

    oneDNN reads the variable when it builds its first primitive, so this must run before the first
    bf16 product of the process (the trainer calls it before building anything).
    """
    os.environ.setdefault(ONEDNN_CACHE_VARIABLE, str(ONEDNN_CACHE_CAPACITY))


# glibc returns freed blocks of 128 KiB and more to the kernel (mmap threshold, trim threshold), so
# each new activation of a training step (a 28 MB fp32 concatenation, the 8 MB slices of the loss)
# page-faults its memory in again: up to a third of some operations' time in the profile. Keeping
# freed memory in the process lets the next step reuse it: +5-10% bf16 training throughput on the
# 2-core CPU (BENCHMARKS.md), for a peak RSS close to the working set of the largest batch.
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3
_KEEP_BYTES = 1 << 30


def keep_freed_memory() -> bool:
    """Asks glibc's malloc to keep freed memory for reuse instead of returning it to the kernel.

    Only on Linux with glibc; elsewhere (or when the user set MALLOC_* variables) it does nothing.
    Returns whether the settings were applied.
    """
    if not sys.platform.startswith("linux") or any(k.startswith("MALLOC_") for k in os.environ):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        settings = ((_M_MMAP_THRESHOLD, _KEEP_BYTES), (_M_TRIM_THRESHOLD, _KEEP_BYTES), (_M_TOP_PAD, 64 << 20))
        return all(libc.mallopt(option, value) == 1 for option, value in settings)
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False


# With OMP_WAIT_POLICY=PASSIVE the second OpenMP thread sleeps between parallel regions, and every
# operation waits the ~50 us it takes to wake it: a 0.01 ms element-wise operation takes 0.07 ms. The
# step loops run thousands of small operations per update, so the reference model trained 20% slower
# (bf16, 2-core Xeon, idle: 5,700-6,030 against 7,110-7,320 target tokens/s unset) and greedy decoding
# 33% slower. Unset, libgomp spins briefly before sleeping, which is as fast as ACTIVE here. On a busy
# machine PASSIVE helps instead (BENCHMARKS.md, tenth round); the variable is read when the OpenMP
# runtime loads, so the process can only report it.
def passive_wait_warning(device: torch.device, threads: int | None = None) -> str | None:
    """The one-line warning for OMP_WAIT_POLICY=PASSIVE with more than one CPU thread (`threads`, or
    torch's count when None), else None."""
    policy = os.environ.get("OMP_WAIT_POLICY", "").strip().upper()
    if device.type != "cpu" or policy != "PASSIVE" or (threads or torch.get_num_threads()) < 2:
        return None
    return ("OMP_WAIT_POLICY=PASSIVE: every parallel operation waits for a sleeping OpenMP thread, which "
            "makes CPU training about 20% slower on an idle machine; unset it there (on a busy machine, "
            "keep it or set trainer.num_threads=1)")


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity, e.g. a container's or taskset's share)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def too_many_threads_warning(threads: int | None, option: str) -> str | None:
    """The one-line warning for `option`=threads above the usable cores, else None. Threads beyond the
    cores take turns on them, and each parallel operation waits for the slowest: it only slows down."""
    cores = usable_cores()
    if threads is None or threads <= cores:
        return None
    return (f"{option}={threads} is more than the {cores} CPU core(s) this process may use: the extra threads "
            f"only slow it down; set {option}={cores} or null")


def prepare_cpu_runtime(keep_freed: bool = True) -> None:
    """What every training process does first: bound oneDNN's cache and (`keep_freed`) keep freed memory.

    Minimum risk training passes keep_freed=False: its beam searches and five-fold candidate batches
    allocate blocks of ever new sizes, which the kept heap could not reuse; with it the resident
    memory of a fine-tuning run grew by 2 GB a minute to the machine's 23 GiB, and the kernel killed
    it (BENCHMARKS.md). Without it the same run stayed at 2.5-3.8 GB."""
    bound_onednn_cache()
    if keep_freed:
        keep_freed_memory()
