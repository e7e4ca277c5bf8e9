"""Two-process DDP (gloo, CPU) equals one process with gradient accumulation 2, and resumes.

`torchrun --nproc_per_node=2 -m nmt.train` trains a tiny dropout-free model; rank r takes batches
r, r + 2, ... of each update's group of 2, so its updates see the same batches as one process with
`trainer.accumulate=2`, and the parameters, the logged losses and the validations must agree within
float tolerance (the all-reduce sums in another order); with trainer.ema_decay the validated and
saved weights are a moving average, which must agree as well. The 2-process run then stops at max_steps
and `resume=true` continues it to the end of the one-process run. The batch-sharing rule itself is
checked without processes.
"""

import json
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from test_resume import logged_losses

from nmt.cli.common import config_dir
from nmt.training.checkpoint import capture_rng_state, load_checkpoint
from nmt.training.distributed import World, updates, updates_per_epoch
from nmt.training.optim import build_schedule
from nmt.training.resume import restore
from nmt.training.trainer import train

OVERRIDES = [
    "experiment=smoke", "data.max_train_examples=60", "data.max_len=30", "tokenizer.vocab_size=200",
    "model.emb_size=8", "model.enc_hidden=8", "model.dec_hidden=8", "model.dropout=0",
    "trainer.batch_tokens=128", "trainer.valid_every=2", "trainer.valid_max_sentences=4",
    "trainer.valid_max_len_b=2", "trainer.plot_sentences=0", "trainer.log_every=1", "trainer.progress=false",
    "trainer.num_threads=1", "scheduler.patience=0", "scheduler.factor=0.5",
    "trainer.ema_decay=0.5",  # the saved "model" is the weights' moving average, kept on every rank
]
HALF, FULL = 2, 5  # the 2-process run stops after HALF updates and is resumed to FULL


def test_every_batch_of_an_epoch_is_used_once_across_ranks_and_accumulation():
    epoch = [[i] for i in range(11)]  # 11 batches: the last group of 2 x 2 holds 3, the next one 0
    for size, accumulate in [(1, 1), (2, 1), (2, 2), (3, 2), (4, 1)]:
        seen, ends = [], set()
        for rank in range(size):
            for update in updates(epoch, 0, World(rank, size), accumulate):
                assert update.batches and len(update.batches) == len(update.weights) <= accumulate
                seen += [b for b, w in zip(update.batches, update.weights, strict=True) if w == 1.0]
                ends.add(update.end)
        assert sorted(seen) == epoch, (size, accumulate)
        per_update = size * accumulate
        assert ends == {min(n, 11) for n in range(per_update, 11 + per_update, per_update)}


def test_updates_per_epoch_counts_the_updates_every_rank_makes():
    """The count the cosine schedule plans with: a short last group is an update too."""
    for n_batches in range(1, 12):
        epoch = [[i] for i in range(n_batches)]
        for size, accumulate in [(1, 1), (1, 2), (2, 1), (2, 2), (3, 2)]:
            for rank in range(size):
                world = World(rank, size)
                made = len(list(updates(epoch, 0, world, accumulate)))
                assert updates_per_epoch(n_batches, world, accumulate) == made, (n_batches, size, accumulate)



def test_a_gpu_process_group_also_has_a_cpu_backend_for_the_stop_flag(monkeypatch):
    """World.any reduces a CPU tensor after every update; with NCCL alone that raises ("no backend
    type associated with device type cpu"), so under torchrun a CUDA run's group pairs NCCL with gloo."""
    import nmt.training.distributed as distributed

    backends = []
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setattr(distributed, "resolve_device", lambda name: torch.device("cuda"))
    monkeypatch.setattr(torch.cuda, "set_device", lambda device: None)
    monkeypatch.setattr(distributed.dist, "is_initialized", lambda: False)
    monkeypatch.setattr(distributed.dist, "init_process_group", lambda backend: backends.append(backend))
    world, device = distributed.init_world("cuda")
    assert (world.rank, world.size, device) == (1, 2, torch.device("cuda", 1))
    pairs = dict(pair.split(":") for pair in backends[0].split(","))
    assert pairs == {"cpu": "gloo", "cuda": "nccl"}

def test_each_rank_resumes_with_the_random_state_it_saved():
    """Under DDP every rank draws its own dropout masks: rank r goes on from rank r's saved RNG."""
    class Tokenizers:
        def to_dict(self):
            return {"joint": True}

    per_rank, draws = [], []
    for seed in (11, 22):
        torch.manual_seed(seed)
        per_rank.append(capture_rng_state())
        draws.append(torch.rand(4))
    model = torch.nn.Linear(2, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    schedule = build_schedule({"name": "inverse_sqrt", "warmup_steps": 1}, optimizer)
    state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "schedule": schedule.state_dict(),
             "progress": {"step": 3}, "rng": per_rank[0], "rng_per_rank": per_rank, "tokenizers": {"joint": True}}
    for rank in (1, 0):
        progress, _ = restore(state, Path("last.pt"), model, optimizer, schedule, Tokenizers(), World(rank, 2))
        assert progress.step == 3
        assert torch.equal(torch.rand(4), draws[rank]), rank


def test_a_resumed_epoch_is_cut_into_groups_from_the_resume_point():
    epoch = [[i] for i in range(8)]
    rank1 = list(updates(epoch, 3, World(1, 2), 1))  # groups [3, 4], [5, 6], [7]
    assert [u.batches for u in rank1] == [[[4]], [[6]], [[7]]]
    assert [u.weights for u in rank1] == [[1.0], [1.0], [0.0]]  # [7] is rank 0's: a stand-in here
    assert [u.end for u in rank1] == [5, 7, 8]


def config(root: Path, cache: Path, *overrides: str):
    with initialize_config_dir(config_dir=config_dir(), version_base=None):
        return compose("train", overrides=[*OVERRIDES, f"data.root={root}", f"data.cache_dir={cache}",
                                           *overrides])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(root: Path, cache: Path, run_dir: Path, *overrides: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
               f"--master_port={free_port()}", f"--log-dir={run_dir.parent / 'torchrun_logs'}",  # else /tmp/torchelastic_*
               "-m", "nmt.train", *OVERRIDES, f"data.root={root}",
               f"data.cache_dir={cache}", f"hydra.run.dir={run_dir}", *overrides]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def assert_close_parameters(a: Path, b: Path) -> None:
    """The moving averages ("model") and the weights training goes on from agree."""
    for key in ("model", "training_weights"):
        first, second = load_checkpoint(a)[key], load_checkpoint(b)[key]
        assert first.keys() == second.keys()
        for name in first:
            torch.testing.assert_close(first[name], second[name], rtol=1e-4, atol=1e-5, msg=f"{key}: {name}")


@pytest.fixture(scope="module")
def one_process(multi30k_root, tmp_path_factory) -> dict:
    """One process, accumulate=2: a checkpoint after HALF updates and the run's end after FULL."""
    cache, run_dir = tmp_path_factory.mktemp("cache"), tmp_path_factory.mktemp("one_process")
    threads = torch.get_num_threads()
    try:
        train(config(multi30k_root, cache, "trainer.accumulate=2", f"trainer.max_steps={HALF}"), run_dir)
        half = run_dir / "half.pt"
        shutil.copy(run_dir / "checkpoints/last.pt", half)
        summary = train(config(multi30k_root, cache, "trainer.accumulate=2", f"trainer.max_steps={FULL}",
                               "resume=true"), run_dir)
    finally:
        torch.set_num_threads(threads)
    assert summary["epochs"] >= 1, "the run should cross an epoch end (a short last group)"
    return {"cache": cache, "dir": run_dir, "half": half, "summary": summary, "losses": logged_losses(run_dir)}


def test_two_processes_equal_one_process_with_accumulation_and_resume(multi30k_root, one_process, tmp_path):
    run_dir = tmp_path / "ddp"
    torchrun(multi30k_root, one_process["cache"], run_dir, f"trainer.max_steps={HALF}")
    assert_close_parameters(run_dir / "checkpoints/last.pt", one_process["half"])
    state = load_checkpoint(run_dir / "checkpoints/last.pt")
    assert len(state["rng_per_rank"]) == 2

    torchrun(multi30k_root, one_process["cache"], run_dir, f"trainer.max_steps={FULL}", "resume=true")
    assert_close_parameters(run_dir / "checkpoints/last.pt", one_process["dir"] / "checkpoints/last.pt")
    ddp_losses, losses = logged_losses(run_dir), one_process["losses"]
    assert ddp_losses.keys() == losses.keys() == set(range(1, FULL + 1))
    for step in losses:  # the all-reduced loss is the one-process loss of the union of the batches
        assert ddp_losses[step] == pytest.approx(losses[step], rel=1e-5)
    history = json.loads((run_dir / "summary.json").read_text())["history"]
    expected = one_process["summary"]["history"]
    assert [h["step"] for h in history] == [h["step"] for h in expected]
    assert [h["valid_bleu"] for h in history] == pytest.approx([h["valid_bleu"] for h in expected])
    assert [h["lr"] for h in history] == pytest.approx([h["lr"] for h in expected])


def test_two_processes_with_subword_sampling_train_on_rank_zeros_sample(multi30k_root, tmp_path):
    """SentencePiece's samples differ between processes; each rank cutting its own sample into batches
    would give the ranks different batch lists (pairs seen twice or never, unequal update counts)."""
    run_dir = tmp_path / "ddp_sampled"
    torchrun(multi30k_root, tmp_path / "cache", run_dir, "tokenizer.subword_alpha=0.5",
                    "trainer.max_steps=null", "trainer.max_epochs=2", "trainer.valid_every=1000")
    # Each rank logs the sample it trains on (both ranks write train.log): the same one, every epoch.
    found = re.findall(r"epoch (\d+): sampled a segmentation .*\(target subwords x([\d.]+)\)",
                       (run_dir / "train.log").read_text())
    growth = {epoch: sorted(x for e, x in found if e == epoch) for epoch, _ in found}
    assert sorted(growth) == ["1", "2"] and all(len(set(xs)) == 1 and len(xs) == 2 for xs in growth.values())
    assert json.loads((run_dir / "summary.json").read_text())["epochs"] == 2
