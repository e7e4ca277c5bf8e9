"""nmt-average: `nmt-average checkpoints=runs/NAME/TIME/checkpoints` writes their averaged weights."""

from omegaconf import OmegaConf

from nmt.cli.common import hydra_command, log_to_stderr
from nmt.training.averaging import write_average


def run(cfg) -> None:
    log_to_stderr()
    target = cfg.checkpoints
    if OmegaConf.is_list(target):
        target = list(target)
    output, paths = write_average(target, cfg.output)
    print(f"averaged {len(paths)} checkpoints ({', '.join(path.name for path in paths)}) into {output}")


main = hydra_command("average", run)

if __name__ == "__main__":
    main()
