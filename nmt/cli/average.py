"""nmt-average: `nmt-average checkpoints=runs/NAME/TIME/checkpoints` writes their averaged weights."""

from pathlib import Path

from omegaconf import OmegaConf

from nmt.cli.checks import check_paths
from nmt.cli.common import hydra_command, log_to_stderr
from nmt.cli.outputs import check_output_file
from nmt.errors import CheckpointError
from nmt.training.averaging import checkpoints_to_average, write_average
from nmt.training.checkpoint import load_checkpoint
from nmt.training.resume import TRAINING_KEYS
from nmt.values import path_list


def check_output(target, output: str | None) -> None:
    """Refuses to overwrite a file training needs (a run's last.pt), any other checkpoint (a kept
    step-<S>.pt, a user's model) or a file that is no checkpoint; only an earlier average (marked by
    its `averaged_from`) may be replaced."""
    path = Path(output) if output else checkpoints_to_average(target)[0].parent / "averaged.pt"  # as write_average
    check_output_file(str(path), "output")  # its folder must exist: a typo should not create folders
    if not path.exists():
        return
    try:
        state = load_checkpoint(path)
    except CheckpointError as exc:
        raise CheckpointError(f"will not overwrite output={path}: {exc}; choose another output") from None
    training = [key for key in TRAINING_KEYS if key in state]
    if training:
        raise CheckpointError(f"will not overwrite output={path}: it holds training state ({', '.join(training)}) "
                              "that a run resumes from; choose another output")
    if "averaged_from" in state:  # what write_average writes: an earlier average may be replaced
        return
    what = (f"a checkpoint that training kept (step {state['step']})" if "step" in state
            else "a model's checkpoint")
    raise CheckpointError(f"will not overwrite output={path}: it is {what}, not an earlier nmt-average output; "
                          "choose another output")


def run(cfg) -> None:
    log_to_stderr()
    check_paths(cfg, "output")
    paths = path_list("checkpoints", cfg.checkpoints)
    target = paths if OmegaConf.is_list(cfg.checkpoints) else paths[0]  # one path: a folder of kept ones
    if isinstance(target, str) and not Path(target).exists():  # else "only one checkpoint to average (typo)"
        raise CheckpointError(f"checkpoints={target}: no such file or folder; give a folder of kept step-*.pt "
                              "checkpoints or a list of files, checkpoints=[a.pt,b.pt]")
    check_output(target, cfg.output)
    output, paths = write_average(target, cfg.output)
    print(f"averaged {len(paths)} checkpoints ({', '.join(path.name for path in paths)}) into {output}")


main = hydra_command("average", run, usage="nmt-average checkpoints=FOLDER (or checkpoints=[a.pt,b.pt])")

if __name__ == "__main__":
    main()
