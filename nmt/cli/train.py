"""nmt-train: `nmt-train [group=option ...] [key=value ...]`, e.g. `nmt-train experiment=smoke`."""

import os
import shlex
import sys
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from nmt.cli.common import hydra_command
from nmt.training.signals import TrainingStopped
from nmt.training.trainer import train


def run(cfg: DictConfig) -> None:
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        summary = train(cfg, run_dir)
    except TrainingStopped as stop:
        print(f"{stop}\nto continue: {resume_command(run_dir)}", file=sys.stderr, flush=True)
        sys.exit(128 + stop.signum)  # the shell's convention for "ended by signal N"
    print(f"best validation BLEU {summary['best_bleu']:.2f}; checkpoints: {run_dir / 'checkpoints'}")


def resume_command(run_dir: Path, argv: list[str] | None = None) -> str:
    """The command that continues this run: the same overrides, its folder and resume=true."""
    argv = sys.argv[1:] if argv is None else argv
    keep = [arg for arg in argv if arg.partition("=")[0].lstrip("+~") not in ("resume", "hydra.run.dir")]
    folder = os.path.relpath(run_dir)
    if folder.startswith(".."):
        folder = str(run_dir)
    return shlex.join(["nmt-train", *keep, f"hydra.run.dir={folder}", "resume=true"])


main = hydra_command("train", run)

if __name__ == "__main__":
    main()
