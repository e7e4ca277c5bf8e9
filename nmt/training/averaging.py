"""Checkpoint averaging: the element-wise mean of several checkpoints' weights, as one checkpoint.

Weights saved near the end of training sit around a minimum; their mean usually sits closer to it
than any one of them and translates a little better (the practice of fairseq's and Joey NMT's
averaging scripts). The checkpoints, two or more, must hold the same model with the same tokenizers,
translating the same direction.
"""

from pathlib import Path

import torch

from nmt.errors import CheckpointError
from nmt.training.checkpoint import check_same_direction, load_checkpoint, save_checkpoint
from nmt.training.kept import KEPT_PATTERN, kept_checkpoints


def checkpoints_to_average(target: str | Path | list) -> list[Path]:
    """A folder means the step-<S>.pt files that training kept in it (trainer.keep_best_checkpoints),
    oldest first; otherwise `target` is a list of checkpoint files."""
    if isinstance(target, str | Path) and Path(target).is_dir():
        paths = kept_checkpoints(target)
        if not paths:
            raise CheckpointError(f"no {KEPT_PATTERN} checkpoints in {target}: train with "
                                  "trainer.keep_best_checkpoints=N to keep some, or list the files to average")
        if len(paths) == 1:
            raise CheckpointError(f"{target} keeps only one {KEPT_PATTERN} checkpoint ({paths[0].name}): averaging "
                                  "needs at least two; train with trainer.keep_best_checkpoints=N (N >= 2), or list "
                                  "the files to average")
        return paths
    paths = [Path(str(p)) for p in ([target] if isinstance(target, str | Path) else target)]
    if not paths:
        raise CheckpointError("no checkpoints to average")
    if len(paths) == 1:  # the "average" would be a copy of its weights, its training state dropped
        raise CheckpointError(f"only one checkpoint to average ({paths[0]}): averaging needs at least two, "
                              f"e.g. checkpoints=[a.pt,b.pt] or a folder of kept {KEPT_PATTERN} checkpoints")
    seen = set()
    for path in paths:  # a file listed twice would silently count double in the mean
        key = path.resolve()
        if key in seen:
            raise CheckpointError(f"{path} is listed twice: each checkpoint counts once in the average")
        seen.add(key)
    return paths


def average_checkpoints(paths: list[Path]) -> dict:
    """The mean of the checkpoints' floating-point weights; integer buffers, config and tokenizers
    come from the last checkpoint. Means are summed in float64, then cast back to each weight's dtype."""
    first = load_checkpoint(paths[0])
    # copy=True: a float64 weight's .double() is the tensor itself, and tied weights would then share
    # one sum, adding every later checkpoint into it once per name.
    sums = {name: value.to(torch.float64, copy=True) if value.is_floating_point() else value
            for name, value in first["model"].items()}
    last = first
    for path in paths[1:]:
        state = load_checkpoint(path)
        _check_same_model(first, paths[0], state, path)
        for name, value in state["model"].items():
            if value.is_floating_point():
                sums[name] += value.double()
            else:
                sums[name] = value
        last = state
    dtypes = {name: value.dtype for name, value in last["model"].items()}
    model = {name: (value / len(paths)).to(dtypes[name]) if value.is_floating_point() else value
             for name, value in sums.items()}
    return {"model": model, "config": last["config"], "tokenizers": last["tokenizers"],
            "averaged_from": [str(path) for path in paths]}


def _check_same_model(reference: dict, reference_path: Path, state: dict, path: Path) -> None:
    # Models of opposite directions can share a joint vocabulary and every setting: their mean translates neither way.
    check_same_direction(reference["config"], reference_path, state["config"], path, "an average")
    if state["config"].get("model") != reference["config"].get("model"):
        raise CheckpointError(f"{path} holds another model than {reference_path} (model settings differ)")
    if state["tokenizers"] != reference["tokenizers"]:
        raise CheckpointError(f"{path} was trained with other SentencePiece models than {reference_path}")
    ours, theirs = reference["model"], state["model"]
    if ours.keys() != theirs.keys() or any(ours[k].shape != theirs[k].shape for k in ours):
        raise CheckpointError(f"{path} has other weights (names or shapes) than {reference_path}")


def write_average(target: str | Path | list, output: str | Path | None) -> tuple[Path, list[Path]]:
    """Averages `target` (a folder of kept checkpoints, or files) into `output` (default: averaged.pt
    in the first checkpoint's folder); returns the output path and the checkpoints averaged."""
    paths = checkpoints_to_average(target)
    output = Path(output) if output else paths[0].parent / "averaged.pt"
    if output.resolve() in {path.resolve() for path in paths}:
        raise CheckpointError(f"output {output} is one of the checkpoints being averaged; choose another path")
    save_checkpoint(average_checkpoints(paths), output)
    return output, paths
