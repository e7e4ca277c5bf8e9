"""Keeping the best validations' weights during training, and averaging checkpoints (nmt-average)."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from test_training import tiny_config
from tiny_checkpoint import CONFIG_SKELETON, make_checkpoint

from nmt.errors import CheckpointError
from nmt.inference.translator import Translator
from nmt.training.averaging import average_checkpoints, checkpoints_to_average, write_average
from nmt.training.checkpoint import load_checkpoint, save_checkpoint
from nmt.training.kept import keep_if_among_best
from nmt.training.trainer import train


def shifted_copy(source: Path, target: Path, shift: float) -> Path:
    """`source` with `shift` added to every floating-point weight."""
    state = load_checkpoint(source)
    state["model"] = {k: v + shift if v.is_floating_point() else v for k, v in state["model"].items()}
    state.pop("format_version")
    save_checkpoint(state, target)
    return target


def test_average_is_the_elementwise_mean_in_each_weights_dtype(tmp_path):
    first = make_checkpoint(tmp_path / "step-1.pt")
    shifted_copy(first, tmp_path / "step-2.pt", 1.0)
    shifted_copy(first, tmp_path / "step-3.pt", 5.0)
    base = load_checkpoint(first)["model"]
    averaged = average_checkpoints([tmp_path / "step-1.pt", tmp_path / "step-2.pt", tmp_path / "step-3.pt"])
    for name, value in base.items():
        assert averaged["model"][name].dtype == value.dtype
        if value.is_floating_point():
            torch.testing.assert_close(averaged["model"][name], value + 2.0)
        else:
            assert torch.equal(averaged["model"][name], value)
    assert averaged["tokenizers"] == load_checkpoint(first)["tokenizers"]


def test_tied_float64_weights_are_averaged_once(tmp_path):
    # A float64 weight's .double() is the tensor itself; tied names must still get separate sums.
    state = load_checkpoint(make_checkpoint(tmp_path / "source.pt"))
    state.pop("format_version")
    state["model"] = {k: v.double() if v.is_floating_point() else v for k, v in state["model"].items()}
    tied = state["model"]["src_embed.weight"]
    state["model"]["tgt_embed.weight"] = tied  # one storage under two names, as the tied model saves it
    for name in ("a.pt", "b.pt"):
        save_checkpoint(state, tmp_path / name)
    averaged = average_checkpoints([tmp_path / "a.pt", tmp_path / "b.pt"])
    for name in ("src_embed.weight", "tgt_embed.weight"):
        assert averaged["model"][name].dtype == torch.float64
        torch.testing.assert_close(averaged["model"][name], tied, rtol=0, atol=0)


def test_a_folder_means_its_kept_checkpoints_in_step_order(tmp_path):
    for step in (250, 1000, 500):
        make_checkpoint(tmp_path / f"step-{step}.pt")
    (tmp_path / "best.pt").write_bytes((tmp_path / "step-250.pt").read_bytes())
    (tmp_path / "step-old.pt").write_bytes((tmp_path / "step-250.pt").read_bytes())
    assert [p.name for p in checkpoints_to_average(tmp_path)] == ["step-250.pt", "step-500.pt", "step-1000.pt"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="no step-"):
        checkpoints_to_average(tmp_path / "empty")


def test_checkpoints_of_different_models_are_refused(tmp_path):
    make_checkpoint(tmp_path / "a.pt")
    make_checkpoint(tmp_path / "b.pt", attention="dot")
    with pytest.raises(CheckpointError, match="b.pt holds another model"):
        average_checkpoints([tmp_path / "a.pt", tmp_path / "b.pt"])
    with pytest.raises(CheckpointError, match="one of the checkpoints"):
        write_average([tmp_path / "a.pt", tmp_path / "b.pt"], tmp_path / "a.pt")


def test_checkpoints_with_other_tokenizers_or_other_weights_are_refused_naming_the_file(tmp_path):
    """Same model settings are not enough: averaging weights trained on other subwords, or of other
    names or shapes, would give a broken model (or a traceback) instead of an average."""
    first = make_checkpoint(tmp_path / "a.pt")
    state = load_checkpoint(first)
    state.pop("format_version")
    other_vocabulary = load_checkpoint(make_checkpoint(tmp_path / "other.pt", vocab_size=36))["tokenizers"]
    assert other_vocabulary != state["tokenizers"]
    save_checkpoint({**state, "tokenizers": other_vocabulary}, tmp_path / "tokenizers.pt")
    reshaped = {**state["model"], "src_embed.weight": torch.zeros(3, 3)}
    save_checkpoint({**state, "model": reshaped}, tmp_path / "shape.pt")
    renamed = {f"x.{name}" if name == "src_embed.weight" else name: value for name, value in state["model"].items()}
    save_checkpoint({**state, "model": renamed}, tmp_path / "names.pt")
    with pytest.raises(CheckpointError, match="tokenizers.pt was trained with other SentencePiece models than"):
        average_checkpoints([first, tmp_path / "tokenizers.pt"])
    for name in ("shape.pt", "names.pt"):
        with pytest.raises(CheckpointError, match=f"{name} has other weights \\(names or shapes\\) than"):
            average_checkpoints([first, tmp_path / name])


def test_a_checkpoint_listed_twice_is_refused_whatever_its_spelling(tmp_path):
    make_checkpoint(tmp_path / "a.pt")
    make_checkpoint(tmp_path / "b.pt")
    (tmp_path / "sub").mkdir()
    with pytest.raises(CheckpointError, match=r"sub/\.\./a.pt is listed twice: each checkpoint counts once"):
        checkpoints_to_average([tmp_path / "a.pt", tmp_path / "b.pt", f"{tmp_path}/sub/../a.pt"])


def test_checkpoints_that_translate_opposite_directions_are_refused(tmp_path):
    """de->en and en->de with one joint vocabulary and one model size have the same settings and weight
    shapes: their mean translated neither way, silently."""
    make_checkpoint(tmp_path / "deen.pt")
    make_checkpoint(tmp_path / "ende.pt", src_lang="en", tgt_lang="de")
    with pytest.raises(CheckpointError) as error:
        average_checkpoints([tmp_path / "deen.pt", tmp_path / "ende.pt"])
    assert str(error.value) == (f"{tmp_path}/ende.pt translates en->de but {tmp_path}/deen.pt translates de->en: "
                                "an average needs one direction")


def test_one_checkpoint_is_no_average(tmp_path):
    """One checkpoint was "averaged 1 checkpoints", a copy of its weights with its training state dropped."""
    make_checkpoint(tmp_path / "step-100.pt")
    with pytest.raises(CheckpointError) as error:
        write_average([tmp_path / "step-100.pt"], tmp_path / "x.pt")
    assert str(error.value) == (f"only one checkpoint to average ({tmp_path}/step-100.pt): averaging needs at "
                                "least two, e.g. checkpoints=[a.pt,b.pt] or a folder of kept step-*.pt checkpoints")
    with pytest.raises(CheckpointError) as error:
        write_average(tmp_path, None)
    assert str(error.value) == (f"{tmp_path} keeps only one step-*.pt checkpoint (step-100.pt): averaging needs at "
                                "least two; train with trainer.keep_best_checkpoints=N (N >= 2), or list the files "
                                "to average")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step-100.pt"]


class FakeTokenizers:
    def to_dict(self):
        return {"joint": True}


def test_only_the_best_validations_stay_on_disk(tmp_path):
    model = torch.nn.Linear(2, 2)
    kept = []
    for step, bleu in [(1, 10.0), (2, 30.0), (3, 20.0), (4, 5.0), (5, 40.0), (6, 30.0)]:
        kept = keep_if_among_best(kept, bleu, step, 3, tmp_path, model.state_dict(), OmegaConf.create(CONFIG_SKELETON),
                                  FakeTokenizers())
    assert kept == [[40.0, 5], [30.0, 6], [30.0, 2]]  # a tie keeps the later step first
    assert sorted(p.name for p in tmp_path.glob("step-*.pt")) == ["step-2.pt", "step-5.pt", "step-6.pt"]
    assert load_checkpoint(tmp_path / "step-5.pt")["valid_score"] == 40.0


def test_training_keeps_its_best_validations_and_their_average_translates(multi30k_root, tmp_path):
    cfg = tiny_config(multi30k_root, tmp_path, "trainer.max_steps=8", "trainer.valid_every=2",
                      "trainer.keep_best_checkpoints=2")
    summary = train(cfg, tmp_path / "run")
    folder = tmp_path / "run/checkpoints"
    ranked = sorted(summary["history"], key=lambda h: (h["valid_bleu"], h["step"]), reverse=True)[:2]
    assert sorted(p.name for p in folder.glob("step-*.pt")) == sorted(f"step-{h['step']}.pt" for h in ranked)
    assert load_checkpoint(folder / "last.pt")["progress"]["kept"] == [[h["valid_bleu"], h["step"]] for h in ranked]
    done = subprocess.run([sys.executable, "-m", "nmt.cli.average", f"checkpoints={folder}"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "averaged 2 checkpoints" in done.stdout
    translator = Translator.load(folder / "averaged.pt", "cpu")
    assert len(translator.translate(["Ein Hund läuft."], beam_size=2)) == 1


def test_average_command_reports_a_missing_checkpoint_in_one_line(tmp_path):
    done = subprocess.run([sys.executable, "-m", "nmt.cli.average", f"checkpoints=[{tmp_path}/nope.pt,{tmp_path}/b.pt]"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip() == f"error: checkpoint not found: {tmp_path}/nope.pt"


def test_average_command_reports_a_missing_folder_as_missing(tmp_path):
    """A folder that does not exist was "only one checkpoint to average (.../nodir)", as if it were a file."""
    done = subprocess.run([sys.executable, "-m", "nmt.cli.average", f"checkpoints={tmp_path}/nodir"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr == (f"error: checkpoints={tmp_path}/nodir: no such file or folder; give a folder of kept "
                           "step-*.pt checkpoints or a list of files, checkpoints=[a.pt,b.pt]\n")
