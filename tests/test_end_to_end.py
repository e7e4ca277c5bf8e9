"""The four commands a user runs, as subprocesses, on the real Multi30k: train, evaluate, translate, plot."""

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import matplotlib.image
import pytest
import torch

from nmt.training.checkpoint import load_checkpoint

# The smoke experiment, shrunk further so the suite stays fast on a 2-core CI machine.
SHRINK = ["trainer.max_steps=40", "trainer.valid_every=20", "trainer.valid_max_sentences=40",
          "trainer.progress=false", "data.max_train_examples=1500", "tokenizer.vocab_size=600"]


def run(command: list[str], env: dict, cwd: Path, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(command, input=stdin, capture_output=True, text=True, env=env, cwd=cwd, timeout=600)


@pytest.fixture(scope="module")
def env(multi30k_root, tmp_path_factory) -> dict:
    return {**os.environ, "NMT_DATA_DIR": str(multi30k_root), "MPLBACKEND": "Agg",
            "NMT_TEST_CACHE": str(tmp_path_factory.mktemp("cache"))}


@pytest.fixture(scope="module")
def trained(env, tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("run")
    result = run(["nmt-train", "experiment=smoke", f"hydra.run.dir={run_dir}",
                  f"data.cache_dir={env['NMT_TEST_CACHE']}", *SHRINK], env, run_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "best validation BLEU" in result.stdout
    assert result.stdout.count("step     20 | epoch") == 1  # each validation line once, not also bare
    return run_dir


def test_train_writes_a_self_contained_run_folder(trained):
    for name in ("config.yaml", "train.log", "summary.json", "spm.model", "checkpoints/best.pt",
                 "checkpoints/last.pt"):
        assert (trained / name).is_file(), name
    assert list((trained / "tensorboard").glob("events.out.tfevents.*"))
    summary = json.loads((trained / "summary.json").read_text())
    assert summary["steps"] == 40 and [h["step"] for h in summary["history"]] == [20, 40]
    ckpt = load_checkpoint(trained / "checkpoints/last.pt")
    assert ckpt["progress"]["step"] == 40
    assert ckpt["config"]["model"]["attention"]["name"] == "additive"
    assert isinstance(ckpt["tokenizers"]["src"], bytes)


def test_validation_loss_falls_while_training(trained):
    history = json.loads((trained / "summary.json").read_text())["history"]
    assert history[-1]["valid_loss"] < history[0]["valid_loss"]


def test_evaluate_reports_bleu_chrf_ter_with_signatures(trained, env, tmp_path):
    ckpt = trained / "checkpoints/best.pt"
    result = run(["nmt-evaluate", f"checkpoint={ckpt}", "split=test_2017_mscoco", "beam_size=2"], env, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((trained / "checkpoints/best.test_2017_mscoco.beam2.json").read_text())
    assert report["sentences"] == 461
    assert set(report["scores"]) == {"bleu", "chrf", "ter"}
    assert "tok:13a" in report["scores"]["bleu"]["signature"] and "BLEU" in result.stdout
    hyps = (trained / "checkpoints/best.test_2017_mscoco.beam2.hyp").read_text().splitlines()
    assert len(hyps) == 461
    assert list(tmp_path.iterdir()) == []  # no stray Hydra output folders


def test_evaluate_scores_the_references_as_training_validated_them(trained, env, multi30k_root, tmp_path):
    """The perplexity nmt-evaluate reports for the validation sentences training used (the first
    trainer.valid_max_sentences) is the one training logged at its last validation, for last.pt."""
    for lang in ("de", "en"):
        with gzip.open(multi30k_root / "multi30k" / f"val.{lang}.gz", "rt", encoding="utf-8") as f:
            (tmp_path / f"val40.{lang}").write_text("".join(f.readline() for _ in range(40)), encoding="utf-8")
    result = run(["nmt-evaluate", f"checkpoint={trained / 'checkpoints/last.pt'}", f"src_file={tmp_path / 'val40.de'}",
                  f"ref_file={tmp_path / 'val40.en'}", "beam_size=1", "reference_perplexity=true",
                  f"output_dir={tmp_path / 'out'}"], env, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "out/last.val40.de.beam1.json").read_text())
    logged = json.loads((trained / "summary.json").read_text())["history"][-1]
    assert report["references"]["nll_per_subword"] == pytest.approx(logged["valid_loss"], rel=1e-4)
    assert "references: perplexity" in result.stdout


def test_translate_keeps_one_line_per_input_line(trained, env, tmp_path):
    ckpt = trained / "checkpoints/best.pt"
    lines = "Ein Hund rennt über die Wiese.\n\nZwei Männer, drei Frauen!\n" + "x" * 300 + "\n"
    result = run(["nmt-translate", f"checkpoint={ckpt}", "beam_size=3"], env, tmp_path, stdin=lines)
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout.split("\n")[:-1]
    assert len(out) == 4 and out[1] == "" and out[0] != ""
    nbest = run(["nmt-translate", f"checkpoint={ckpt}", "nbest=3"], env, tmp_path, stdin="Ein Hund.\n")
    scored = nbest.stdout.splitlines()
    assert len(scored) == 3
    scores = [float(line.split("\t")[0]) for line in scored]
    assert scores == sorted(scores, reverse=True)
    assert list(tmp_path.iterdir()) == []


def test_translate_appends_the_word_alignment_to_every_output_line(trained, env, tmp_path):
    lines = ["Ein Mann fährt Fahrrad auf einer Straße.", "", "Zwei Hunde spielen im Schnee."]
    result = run(["nmt-translate", f"checkpoint={trained / 'checkpoints/best.pt'}", "alignment=true"], env, tmp_path,
                 stdin="".join(f"{line}\n" for line in lines))
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout.splitlines()
    assert len(out) == len(lines) and out[1] == "\t"  # a blank input: no translation, no links
    assert any(len(row.split("\t")[0].split()) > 1 for row in out)  # the checks below have words to check
    for source, row in zip(lines, out, strict=True):
        if not source:
            continue
        text, links = row.split("\t")
        pairs = [tuple(map(int, link.split("-"))) for link in links.split()]
        assert sorted(j for _, j in pairs) == list(range(len(text.split())))  # one link per output word
        assert all(0 <= i < len(source.split()) for i, _ in pairs)


def test_translate_links_point_at_the_input_words_around_junk_the_model_does_not_see(trained, env, tmp_path):
    """A zero-width space or control character standing alone encodes to nothing, so the translation
    and its attention stay as they were; the links must still count it as a word, as str.split() and
    nmt-align do: each link of the clean line points at the same word, whose number is shifted by the
    whitespace words the junk adds before it. A zero-width space inside a word leaves it one word.
    A prefix makes the briefly trained model's translations several words long."""
    clean = "Ein Mann fährt Fahrrad auf einer Straße ."
    lines = {  # line -> the number in it of each word of the clean line
        clean: [0, 1, 2, 3, 4, 5, 6, 7],
        "Ein Mann \u200b fährt Fahrrad auf einer Straße .": [0, 1, 3, 4, 5, 6, 7, 8],
        "\x01 Ein Mann fährt \u200b \x02 Fahrrad auf  einer\u00a0Straße .": [1, 2, 3, 6, 7, 8, 9, 10],
        "Ein Mann\u200bfährt Fahrrad auf einer Straße .": [0, 1, 1, 2, 3, 4, 5, 6],
    }
    (tmp_path / "prefix.txt").write_text("A man rides a bike on a street\n" * len(lines), encoding="utf-8")
    result = run(["nmt-translate", f"checkpoint={trained / 'checkpoints/best.pt'}", "alignment=true",
                  f"prefix={tmp_path / 'prefix.txt'}"], env, tmp_path, stdin="".join(f"{line}\n" for line in lines))
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [row.split("\t") for row in result.stdout.splitlines()]
    links = [{tuple(map(int, link.split("-"))) for link in row[1].split()} for row in rows]
    assert len({text for text, _ in rows}) == 1  # the model read the same pieces
    assert len(links[0]) == len(rows[0][0].split()) >= 8  # one link per output word
    assert any(i > 2 for i, _ in links[0])  # links to words after the junk, to check
    for (line, number), line_links in zip(lines.items(), links, strict=True):
        assert all(0 <= i < len(line.split()) for i, _ in line_links)
        assert line_links == {(number[i], j) for i, j in links[0]}


def test_translate_reads_and_writes_files(trained, env, tmp_path):
    (tmp_path / "in.txt").write_text("Ein Mann.\nEine Frau.\n", encoding="utf-8")
    result = run(["nmt-translate", f"checkpoint={trained / 'checkpoints/best.pt'}", "input=in.txt",
                  "output=out.txt"], env, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert len((tmp_path / "out.txt").read_text().splitlines()) == 2


@pytest.mark.parametrize("level", ["subword", "word"])
def test_plot_writes_a_readable_image(trained, env, tmp_path, level):
    result = run(["nmt-plot", f"checkpoint={trained / 'checkpoints/best.pt'}", "src=Ein Mann, der läuft.",
                  f"level={level}", "output=attn.png"], env, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    image = matplotlib.image.imread(tmp_path / "attn.png")
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
    assert sorted(p.name for p in tmp_path.iterdir()) == ["attn.png"]


def test_plot_of_a_given_reference_uses_forced_decoding(trained, env, tmp_path):
    result = run(["nmt-plot", f"checkpoint={trained / 'checkpoints/best.pt'}", "src=Ein Hund.",
                  "ref=A dog running.", "output=forced.svg"], env, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "translation: A dog running." in result.stdout
    assert (tmp_path / "forced.svg").read_text().lstrip().startswith("<?xml")


def test_python_api_translates_with_attention(trained):
    from nmt.inference.translator import Translator

    translator = Translator.load(trained / "checkpoints/best.pt", device="cpu")
    [[best]] = translator.translate(["Ein Hund läuft."], beam_size=2, return_attention=True)
    assert best.attention.shape == (len(best.tgt_pieces), len(best.src_pieces))
    torch.testing.assert_close(best.attention.sum(-1), torch.ones(len(best.tgt_pieces)))


@pytest.mark.parametrize(("args", "message"), [
    (["nmt-train", "model/attention=bogus"], "additive"),
    (["nmt-train", "trainer.max_stepz=3"], "max_stepz"),
    (["nmt-evaluate", "checkpoint=missing.pt"], "checkpoint not found: missing.pt"),
    (["nmt-translate", "checkpoint=missing.pt"], "checkpoint not found"),
    (["nmt-translate", "checkpoint="], "error: checkpoint is empty; give the path of a checkpoint"),
    (["nmt-plot", "checkpoint=missing.pt", "src=x", "output=a.gif"], "output=a.gif"),
])
def test_user_mistakes_give_a_short_error_and_nonzero_exit(args, message, env, tmp_path):
    result = run(args, env, tmp_path)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_corrupt_checkpoint_is_refused_without_traceback(env, tmp_path):
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    result = run(["nmt-translate", "checkpoint=bad.pt"], env, tmp_path, stdin="Hallo\n")
    assert result.returncode == 2 and result.stderr.startswith("error: cannot load checkpoint bad.pt")
    assert "Traceback" not in result.stderr


def test_console_scripts_are_installed():
    for name in ("nmt-train", "nmt-evaluate", "nmt-translate", "nmt-plot", "nmt-average"):
        assert Path(sys.executable).with_name(name).exists() or _on_path(name), name


def _on_path(name: str) -> bool:
    return any((Path(p) / name).exists() for p in os.environ.get("PATH", "").split(os.pathsep))
