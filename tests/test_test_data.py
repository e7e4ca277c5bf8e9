"""Where the suite finds Multi30k: where a user of the commands has it, so `make test` after the README's
setup runs the corpus tests instead of skipping them."""

from pathlib import Path

from conftest import REPO_ROOT, data_roots


def test_the_tests_look_where_the_commands_keep_the_corpus(monkeypatch, tmp_path):
    monkeypatch.delenv("NMT_TEST_DATA_DIR", raising=False)
    monkeypatch.setenv("NMT_DATA_DIR", str(tmp_path))
    assert data_roots() == [tmp_path, REPO_ROOT / "data", REPO_ROOT.parent / "shared" / "data"]
    monkeypatch.delenv("NMT_DATA_DIR")
    assert data_roots()[0] == REPO_ROOT / "data"


def test_an_explicit_test_data_folder_is_the_only_one(monkeypatch, tmp_path):
    monkeypatch.setenv("NMT_TEST_DATA_DIR", str(tmp_path / "corpus"))
    monkeypatch.setenv("NMT_DATA_DIR", str(tmp_path))
    assert data_roots() == [Path(tmp_path / "corpus")]


def test_a_partial_corpus_is_passed_over(monkeypatch, tmp_path):
    from conftest import NEEDED, _complete

    (tmp_path / "multi30k").mkdir()
    (tmp_path / "multi30k" / "train.de.gz").write_bytes(b"")
    assert not _complete(tmp_path / "multi30k")  # as a download cut short leaves it
    for name in NEEDED:
        (tmp_path / "multi30k" / name).write_bytes(b"")
    assert _complete(tmp_path / "multi30k")
