"""The epoch's sample kept for a resume: read back only under the key it was saved with."""

import numpy as np

from nmt.data.epoch_sample import load_epoch_sample, save_epoch_sample
from nmt.data.storage import RaggedIds


def test_a_sample_reads_back_under_its_key_only(tmp_path):
    path = tmp_path / "checkpoints" / "epoch-sample.npz"
    src, tgt = RaggedIds.from_lists([[5, 6], [7]]), RaggedIds.from_lists([[8], [9, 10, 11]])
    key = {"seed": 42, "epoch": 3, "alpha": 0.1, "nbest": 64, "max_len": 100, "pairs": 2}
    save_epoch_sample(path, key, src, tgt)
    loaded_src, loaded_tgt = load_epoch_sample(path, key)
    for loaded, original in ((loaded_src, src), (loaded_tgt, tgt)):
        assert np.array_equal(loaded.flat, original.flat) and np.array_equal(loaded.offsets, original.offsets)
    assert load_epoch_sample(path, {**key, "epoch": 4}) is None  # another epoch: sample anew
    assert [p.name for p in path.parent.iterdir()] == ["epoch-sample.npz"]  # no temporary file left
    path.write_bytes(b"cut off")
    assert load_epoch_sample(path, key) is None  # unreadable: sample anew
    assert load_epoch_sample(tmp_path / "none.npz", key) is None


def test_a_sample_that_cannot_be_written_is_a_warning_not_a_failure(tmp_path, caplog):
    (tmp_path / "file").write_text("")
    path = tmp_path / "file" / "epoch-sample.npz"  # its folder is a file
    save_epoch_sample(path, {"epoch": 0}, RaggedIds.from_lists([[5]]), RaggedIds.from_lists([[6]]))
    assert "a run resumed inside the epoch will sample it anew" in caplog.text
    assert load_epoch_sample(path, {"epoch": 0}) is None
