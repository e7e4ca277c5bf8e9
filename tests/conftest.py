"""Shared pytest fixtures."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def data_roots() -> list[Path]:
    """Where the tests look for ``multi30k/``: NMT_TEST_DATA_DIR alone when set; otherwise where the
    commands keep it (NMT_DATA_DIR, then <repo>/data, where `make train` downloads it), then
    <repo>/../shared/data."""
    if os.environ.get("NMT_TEST_DATA_DIR"):
        return [Path(os.environ["NMT_TEST_DATA_DIR"])]
    commands = [Path(os.environ["NMT_DATA_DIR"])] if os.environ.get("NMT_DATA_DIR") else []
    return [*commands, REPO_ROOT / "data", REPO_ROOT.parent / "shared" / "data"]


# What `make train` leaves in data/multi30k/; a folder with less (a download cut short) is passed over.
# Other files a test reads (test sets, French) are fetched into it on first use, as the commands do.
NEEDED = [f"{split}.{lang}.gz" for split in ("train", "val") for lang in ("de", "en")]


def _complete(folder: Path) -> bool:
    return all((folder / name).is_file() for name in NEEDED)


@pytest.fixture(scope="session")
def multi30k_root() -> Path:
    """The first of `data_roots()` that holds ``multi30k/``.

    Missing data skips the test locally but fails it in CI, where skipping would hide a broken setup.
    """
    roots = data_roots()
    root = next((r for r in roots if _complete(r / "multi30k")), None)
    if root is None:
        message = (f"Multi30k not found in {', '.join(str(r / 'multi30k') for r in roots)}; set "
                   "NMT_TEST_DATA_DIR to the folder containing multi30k/ (or run `make train` once to fetch it)")
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
