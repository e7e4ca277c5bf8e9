"""nmt-train: `nmt-train [group=option ...] [key=value ...]`, e.g. `nmt-train experiment=smoke`."""

from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from nmt.cli.common import hydra_command
from nmt.training.trainer import train


def run(cfg: DictConfig) -> None:
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    summary = train(cfg, run_dir)
    print(f"best validation BLEU {summary['best_bleu']:.2f}; checkpoints: {run_dir / 'checkpoints'}")


main = hydra_command("train", run)

if __name__ == "__main__":
    main()
