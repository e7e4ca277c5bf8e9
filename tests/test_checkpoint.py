"""Checkpoint writes that fail: one clear error, the previous checkpoint kept, no stray file."""

import codecs
import copy
import errno
import math
import os
import zipfile

import pytest
import torch
from tiny_checkpoint import CONFIG_SKELETON

import nmt.files as files_module
from nmt.errors import CheckpointError
from nmt.training.checkpoint import capture_rng_state, load_checkpoint, restore_rng_state, save_checkpoint


class FillingDisk:
    """A file that accepts `room` bytes, then fails as a full disk does."""

    def __init__(self, file, room: int):
        self.file, self.room = file, room

    def write(self, data) -> int:
        if len(data) > self.room:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.room -= len(data)
        return self.file.write(data)

    def __getattr__(self, name):
        return getattr(self.file, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.file.close()


def state(value: float) -> dict:
    return {"model": {"w": torch.full((50_000,), value)}, "config": CONFIG_SKELETON, "tokenizers": {}}


def test_a_full_disk_is_one_error_that_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    save_checkpoint(state(1.0), path)
    # atomic_write opens its temporary file with the builtin open; the module-level name shadows it.
    monkeypatch.setattr(files_module, "open", lambda path, mode: FillingDisk(open(path, mode), 4096), raising=False)
    with pytest.raises(CheckpointError, match=f"^cannot write checkpoint {path}: No space left on device$"):
        save_checkpoint(state(2.0), path)
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]  # the temporary file is gone
    assert torch.equal(load_checkpoint(path)["model"]["w"], torch.full((50_000,), 1.0))


class Payload:
    """Any pickled object; a weights-only load must refuse to construct it."""


@pytest.mark.parametrize(("content", "reason"), [
    (b"", "cannot load checkpoint {path}: the file is empty"),
    (b"step 100: loss 2.31\n", "cannot load checkpoint {path}: not a file written by torch.save"),
    ("cut", "cannot load checkpoint {path}: the file is cut short (it starts as a checkpoint but its end is missing: "
            "an interrupted copy or download?); copy it again or take another checkpoint"),
    ("foreign zip", "cannot load checkpoint {path}: not a file written by torch.save (a zip archive without its "
                    "records)"),
    ({"format_version": 1, "model": {}, "config": {}, "tokenizers": {}, "payload": Payload()},
     "cannot load checkpoint {path}: it contains pickled Python objects, which are refused for safety"),
    ({"format_version": 1, "config": {}, "tokenizers": {}}, "{path} is not an nmt checkpoint (missing model)"),
    ([torch.ones(1)], "{path} is not an nmt checkpoint (missing format_version, model, config, tokenizers)"),
])
def test_files_that_are_not_checkpoints_say_what_is_wrong(tmp_path, content, reason):
    path = tmp_path / "x.pt"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content == "cut":  # a checkpoint copied only in part
        torch.save({"w": torch.ones(1000)}, path)
        path.write_bytes(path.read_bytes()[:2000])
    elif content == "foreign zip":
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("notes.txt", "not weights")
    else:
        torch.save(content, path)
    with pytest.raises(CheckpointError) as error:
        load_checkpoint(path)
    assert str(error.value) == reason.format(path=path)


def edited(change) -> dict:
    """A checkpoint's state as save_checkpoint writes it, with one part changed by hand."""
    state = {"format_version": 1, "model": {"w": torch.ones(3)}, "config": copy.deepcopy(CONFIG_SKELETON),
             "tokenizers": {}}
    change(state)
    return state


UNREADABLE = "cannot read checkpoint {path}: its {part} is not what nmt writes there (edited by hand, or written by " \
             "another program?)"


@pytest.mark.parametrize(("change", "reason"), [
    (lambda state: state.update(config="hello"), UNREADABLE.format(path="{path}", part="config")),
    (lambda state: state["config"].update(model=5), UNREADABLE.format(path="{path}", part="config.model")),
    (lambda state: state["config"]["model"].update(attention=5),
     UNREADABLE.format(path="{path}", part="config.model.attention")),
    (lambda state: state["config"].pop("data"), UNREADABLE.format(path="{path}", part="config.data")),
    (lambda state: state["config"]["data"].update(src_lang=5), UNREADABLE.format(path="{path}", part="config.data")),
    (lambda state: state.update(tokenizers=[1]), UNREADABLE.format(path="{path}", part="tokenizers")),
    (lambda state: state.update(model=[1]), UNREADABLE.format(path="{path}", part="weights (model)")),
    (lambda state: state["model"].update(w=torch.tensor([1.0, math.nan])),
     "checkpoint {path} has NaN or infinite weights (w); take an earlier checkpoint"),
])
def test_a_checkpoint_with_a_part_of_the_wrong_kind_is_refused_naming_it(tmp_path, change, reason):
    """Each part would otherwise fail with a TypeError where a command first reads it, and NaN
    weights would translate every sentence into nothing with exit status 0."""
    path = tmp_path / "x.pt"
    torch.save(edited(change), path)
    with pytest.raises(CheckpointError) as error:
        load_checkpoint(path)
    assert str(error.value) == reason.format(path=path)
    torch.save(edited(lambda state: None), path)
    assert load_checkpoint(path)["config"] == CONFIG_SKELETON  # the same file unedited loads


def test_checkpoints_need_no_global_beyond_codecs_encode_which_nmt_allows_for_old_torch(tmp_path):
    """torch 2.4 (pyproject's lowest) refused every checkpoint: its weights_only loader did not yet
    allow codecs.encode, which torch.save uses for bytes. nmt allows it; nothing else may be needed."""
    path = tmp_path / "ckpt.pt"
    save_checkpoint({**state(1.0), "tokenizers": {"src": b"\x00\xffsentencepiece"}}, path)
    assert codecs.encode in torch.serialization.get_safe_globals()
    if hasattr(torch.serialization, "get_unsafe_globals_in_checkpoint"):  # torch 2.5 and newer
        assert set(torch.serialization.get_unsafe_globals_in_checkpoint(path)) <= {"_codecs.encode"}
    assert load_checkpoint(path)["tokenizers"]["src"] == b"\x00\xffsentencepiece"


def test_resuming_with_fewer_gpus_than_the_checkpoint_saw_restores_the_gpus_there_are(monkeypatch):
    # A checkpoint saved where 2 GPUs were visible, resumed where only 1 is: torch's set_rng_state_all
    # would index a GPU that does not exist; only the visible GPU's state may be passed.
    gpu_states = [torch.zeros(16, dtype=torch.uint8), torch.ones(16, dtype=torch.uint8)]
    state = {**capture_rng_state(), "cuda": gpu_states}  # captured on this CPU machine
    restored = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "set_rng_state_all", lambda states: restored.append(list(states)))
    restore_rng_state(state)
    assert len(restored) == 1
    assert len(restored[0]) == 1 and torch.equal(restored[0][0], gpu_states[0])


def damage(path, at: int, length: int = 400) -> None:
    """Overwrites `length` bytes from offset `at`, as a failing disk or a broken copy would."""
    with open(path, "r+b") as f:
        f.seek(at)
        f.write(b"\x41" * length)


def test_a_checkpoint_damaged_on_disk_is_refused_naming_the_damaged_part(tmp_path):
    """torch.load checks no zip checksum: bytes changed inside a weight load silently (and translate
    garbage); inside data.pkl they gave torch's advice to load with weights_only=False."""
    path = tmp_path / "x.pt"
    save_checkpoint(state(1.0), path)
    weights = path.read_bytes().index(torch.ones(1000).numpy().tobytes())
    damage(path, weights + 1000)
    assert torch.load(path, weights_only=True)["model"]["w"][250:350].ne(1.0).all()  # what torch alone loads
    with pytest.raises(CheckpointError) as error:
        load_checkpoint(path)
    assert str(error.value) == (f"cannot load checkpoint {path}: the file is damaged (its part archive/data/0 is corrupt: "
                                "an interrupted copy or a disk error?); copy it again or take another checkpoint")
    save_checkpoint(state(1.0), path)
    damage(path, path.read_bytes().index(b"format_version"), 20)
    with pytest.raises(CheckpointError, match=r"^cannot load checkpoint .*: the file is damaged \(its part "
                                              r"archive/data.pkl is corrupt: an interrupted copy or a disk error\?\)"):
        load_checkpoint(path)


def resealed(source, target, change) -> None:
    """`source` as a zip archive whose data.pkl is `change`d and whose checksums fit the new bytes."""
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for info in old.infolist():
            data = old.read(info)
            new.writestr(info, change(data) if info.filename.endswith("/data.pkl") else data)


def test_a_pickle_nmt_cannot_read_is_damage_not_advice_to_run_its_code(tmp_path):
    """A data.pkl that is no pickle, its checksum intact (damaged before it was archived, or another
    program's file): torch's message advised weights_only=False, which would run the file's code."""
    source, path = tmp_path / "source.pt", tmp_path / "x.pt"
    save_checkpoint(state(1.0), source)
    resealed(source, path, lambda data: data[:2] + b"\x41" * 10 + data[12:])
    with pytest.raises(CheckpointError) as error:
        load_checkpoint(path)
    assert str(error.value) == (f"cannot load checkpoint {path}: the file is damaged or not an nmt checkpoint "
                                "(its data.pkl cannot be read: Unsupported operand 65)")
    resealed(source, path, lambda data: data)
    assert torch.equal(load_checkpoint(path)["model"]["w"], torch.ones(50_000))  # resealing alone harms nothing
