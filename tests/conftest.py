"""Shared pytest fixtures."""

from __future__ import annotations

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
