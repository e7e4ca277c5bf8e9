"""Self-contained, crash-safe checkpoints that load without running pickled code.

A checkpoint holds tensors and plain data only: model/optimizer/schedule state, counters, RNG
states, the resolved config as a dict, and the SentencePiece models as bytes, so `torch.load(...,
weights_only=True)` can open it and a translation needs nothing else.
"""

import codecs
import contextlib
import pickle
import random
import zipfile
from pathlib import Path

import numpy as np
import torch

from nmt.errors import CheckpointError, first_line
from nmt.files import atomic_write, stale_temporaries

FORMAT_VERSION = 1
REQUIRED_KEYS = ("format_version", "model", "config", "tokenizers")

# torch.save pickles bytes (the SentencePiece models) as calls of codecs.encode. torch 2.4's
# weights_only loader does not allow that function yet and refused every nmt checkpoint; later
# releases allow it themselves. It only turns a string into bytes, so allowing it here is safe.
torch.serialization.add_safe_globals([codecs.encode])


def save_checkpoint(state: dict, path: Path) -> None:
    """Writes `state` through `atomic_write` (durable): a crash at any moment leaves either the old
    complete file or the new complete file (plus, at worst, a stray temporary file that
    `remove_stale_temporaries` deletes). A write that fails (disk full, no permission) is a
    CheckpointError and leaves the old file in place.
    """
    path = Path(path)
    writer = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(path, durable=True) as f:
            writer = _RecordingWriter(f)
            torch.save({"format_version": FORMAT_VERSION, **state}, writer)
    except OSError as exc:
        raise CheckpointError(f"cannot write checkpoint {path}: {exc.strerror or exc}") from None
    except RuntimeError:
        if writer is None or writer.error is None:
            raise
        error = writer.error  # torch.save reports a failed write as a RuntimeError about file positions
        raise CheckpointError(f"cannot write checkpoint {path}: {error.strerror or error}") from None


class _RecordingWriter:
    """A file wrapper that keeps the OSError of a failed write: torch.save replaces it with a
    RuntimeError that no longer says why (disk full, quota)."""

    def __init__(self, file):
        self.file, self.error = file, None

    def write(self, data) -> int:
        try:
            return self.file.write(data)
        except OSError as exc:
            self.error = exc
            raise

    def flush(self) -> None:
        self.file.flush()


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Deletes temporary checkpoint files left by writers that were killed mid-write."""
    removed = []
    for tmp in stale_temporaries(folder):
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
            removed.append(tmp)
    return removed


def load_checkpoint(path: str | Path, map_location="cpu") -> dict:
    """Loads a checkpoint written by save_checkpoint; anything else is a CheckpointError."""
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"checkpoint {path} is a folder, not a checkpoint file")
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    if path.stat().st_size == 0:
        raise CheckpointError(f"cannot load checkpoint {path}: the file is empty")
    if not zipfile.is_zipfile(path):  # torch.save has written zip archives since torch 1.6
        raise CheckpointError(f"cannot load checkpoint {path}: {_not_a_zip(path)}")
    damage = _damage(path)
    if damage is not None:
        raise CheckpointError(f"cannot load checkpoint {path}: the file is damaged ({damage}: an interrupted "
                              "copy or a disk error?); copy it again or take another checkpoint")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises several types for corrupt or unsafe files
        raise CheckpointError(f"cannot load checkpoint {path}: {_load_failure(exc)}") from None
    missing = [k for k in REQUIRED_KEYS if k not in state] if isinstance(state, dict) else list(REQUIRED_KEYS)
    if missing:
        raise CheckpointError(f"{path} is not an nmt checkpoint (missing {', '.join(missing)})")
    if state["format_version"] != FORMAT_VERSION:
        raise CheckpointError(f"{path} has checkpoint format {state['format_version']}, "
                              f"this nmt reads format {FORMAT_VERSION}")
    part = _unreadable_part(state)
    if part is not None:
        raise unreadable(path, part)
    weight = next((name for name, value in state["model"].items()
                   if value.is_floating_point() and not torch.isfinite(value).all()), None)
    if weight is not None:  # it would translate every sentence into nothing
        raise CheckpointError(f"checkpoint {path} has NaN or infinite weights ({weight}); take an earlier checkpoint")
    return state


def _not_a_zip(path: Path) -> str:
    """Why a file is no checkpoint when it is no zip archive: one that starts as a zip archive lacks the
    directory at its end, so it was cut short (a copy or download that stopped), not a foreign file."""
    with open(path, "rb") as file:
        start = file.read(4)
    if start == b"PK\x03\x04":  # a zip archive's first local file header
        return ("the file is cut short (it starts as a checkpoint but its end is missing: an interrupted copy or "
                "download?); copy it again or take another checkpoint")
    return "not a file written by torch.save"


def _damage(path: Path) -> str | None:
    """What is damaged in the zip archive at `path`, or None. torch.load checks none of the archive's
    CRC-32 checksums: a flipped byte in a weight loads silently and translates garbage. One pass
    over the file (0.06 s for a 150 MB checkpoint read from the page cache); torch.load then reads
    it from the cache."""
    try:
        with zipfile.ZipFile(path) as archive:
            member = archive.testzip()  # the first member whose data fails its CRC-32
    except (zipfile.BadZipFile, EOFError, ValueError):  # testzip itself reports a member's damaged header
        return "its zip directory is broken"
    except OSError as exc:  # a disk that fails to read the file
        raise CheckpointError(f"cannot read checkpoint {path}: {exc.strerror or exc}") from None
    return None if member is None else f"its part {member} is corrupt"


def _load_failure(exc: Exception) -> str:
    """Why torch.load failed, in one line. Its weights-only refusal advises loading again with
    weights_only=False, which would run whatever code the file holds: wrong for a foreign file,
    and no cure for a damaged one."""
    message = " ".join(str(exc).split())
    if "Unsupported global" in message:
        return "it contains pickled Python objects, which are refused for safety"
    if isinstance(exc, pickle.UnpicklingError | UnicodeDecodeError | EOFError):  # a pickle that makes no sense
        detail = message.split("WeightsUnpickler error:")[-1].split(" Check the documentation")[0].strip()
        return f"the file is damaged or not an nmt checkpoint (its data.pkl cannot be read: {detail})"
    if "PytorchStreamReader" in message or "inline_container" in message:  # a zip of other files
        return "not a file written by torch.save (a zip archive without its records)"
    return first_line(exc)


def unreadable(path: str | Path, part: str, detail: str | None = None) -> CheckpointError:
    """The error for a checkpoint `part` of a kind nmt never writes there; `detail` says what is wrong."""
    return CheckpointError(f"cannot read checkpoint {path}: its {part} is not what nmt writes there (edited by hand, "
                           f"or written by another program?){f': {detail}' if detail else ''}")


def direction(config: dict) -> str:
    """The languages a checkpoint translates between, as "de->en"."""
    return f"{config['data']['src_lang']}->{config['data']['tgt_lang']}"


def check_same_direction(reference: dict, reference_path, config: dict, path, purpose: str) -> None:
    """Refuses to combine (`purpose`: "an ensemble", "an average") models of other directions:
    with one joint vocabulary and one model size nothing else tells them apart."""
    if direction(config) != direction(reference):
        raise CheckpointError(f"{path} translates {direction(config)} but {reference_path} translates "
                              f"{direction(reference)}: {purpose} needs one direction")


def _unreadable_part(state: dict) -> str | None:
    """The first part the commands read that is not of the kind they read it as, or None; each
    would otherwise fail with a TypeError wherever it is first used."""
    config = state["config"]
    if not isinstance(config, dict):
        return "config"
    if not isinstance(config.get("model"), dict):
        return "config.model"
    if not isinstance(config["model"].get("attention"), dict):
        return "config.model.attention"
    data = config.get("data")  # its languages name the direction in reports, the server and alignments
    if not (isinstance(data, dict) and all(isinstance(data.get(side), str) for side in ("src_lang", "tgt_lang"))):
        return "config.data"
    if not isinstance(state["tokenizers"], dict):
        return "tokenizers"
    if not (isinstance(state["model"], dict) and all(isinstance(value, torch.Tensor) for value in state["model"].values())):
        return "weights (model)"
    return None


def capture_rng_state() -> dict:
    np_state = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np_state = state["numpy"]
    np.random.set_state(("MT19937", np_state["keys"].numpy().astype(np.uint32), np_state["pos"],
                         np_state["has_gauss"], np_state["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        # One state per GPU the saving process could see; a resume that sees fewer GPUs (another
        # machine, CUDA_VISIBLE_DEVICES) restores those it has instead of failing on the others.
        torch.cuda.set_rng_state_all(state["cuda"][:torch.cuda.device_count()])


@contextlib.contextmanager
def rng_preserved():
    """Puts every RNG back as it was afterwards: what runs inside leaves training's random streams alone."""
    state = capture_rng_state()
    try:
        yield
    finally:
        restore_rng_state(state)
