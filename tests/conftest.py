"""Shared pytest fixtures."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def multi30k_root() -> Path:
    """The directory that contains ``multi30k/`` (env NMT_TEST_DATA_DIR, default <repo>/../shared/data).

    Missing data skips the test locally but fails it in CI, where skipping would hide a broken setup.
    """
    root = Path(os.environ.get("NMT_TEST_DATA_DIR", REPO_ROOT.parent / "shared" / "data"))
    if not (root / "multi30k" / "train.de.gz").is_file():
        message = (
            f"Multi30k not found at {root / 'multi30k'}; set NMT_TEST_DATA_DIR to the folder containing it"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return root


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models run fastest on one thread (no OpenMP spin-waiting on a busy 2-core machine), and
    runs compared bit for bit must use the same count; the suite's count is put back afterwards.
    Modules opt in with `pytestmark = pytest.mark.usefixtures("one_torch_thread")`."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def root_logger_restored():
    """Commands run in-process point the root logger at the test's captured stderr
    (logging.basicConfig(force=True)); restored, a later test does not log into a closed stream."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
