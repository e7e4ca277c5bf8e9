"""After a sweep, one table of its jobs: the options that set each apart and their results, printed
when the last job ends and kept as <sweep dir>/summary.tsv. For `nmt-train -m model/attention=dot,general`
how far each run trained and its best validation score (from its summary.json); for `nmt-evaluate -m
length_penalty=0.6,1.0` each evaluation's BLEU, chrF and TER (the report its task returns).

A Hydra callback (hydra.callbacks in configs/train.yaml and evaluate.yaml): it hears of each job as
it ends, which it does in this process for Hydra's basic launcher; a launcher that runs jobs
elsewhere leaves it none.
"""

import csv
import json
import time
from pathlib import Path
from typing import Any, NamedTuple

from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from nmt.cli.sweeps import swept_values

TSV_ONLY = ("overrides", "best_checkpoint", "checkpoint", "error")  # columns too wide for the printed table


class JobFailure(NamedTuple):
    """What a sweep's training job returns when training could not go on (it diverged, memory ran
    out): the sweep goes on, and its table says so."""
    message: str


class FinishedJob(NamedTuple):
    number: int
    overrides: list[str]
    run_dir: Path
    seconds: float  # from the job's start to its end: data preparation, training and validations
    report: dict | None = None  # what the task returned: nmt-evaluate's report
    failure: str | None = None  # why training could not go on (nmt.cli.train)


class SweepSummary(Callback):
    def __init__(self) -> None:
        self.jobs: list[FinishedJob] = []
        self.started = time.perf_counter()

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        self.started = time.perf_counter()

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        hydra = config.hydra
        if OmegaConf.is_missing(hydra.job, "num"):  # a single run (no -m): no job number, nothing to sum up
            return
        returned = job_return.return_value if job_return.status == JobStatus.COMPLETED else None
        self.jobs.append(FinishedJob(hydra.job.num, list(hydra.overrides.task), Path(hydra.runtime.output_dir),
                                     time.perf_counter() - self.started, returned if isinstance(returned, dict) else None,
                                     returned.message if isinstance(returned, JobFailure) else None))

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if not self.jobs:
            return
        rows = summary_rows(self.jobs)
        table = Path(config.hydra.sweep.dir) / "summary.tsv"
        with table.open("w", newline="", encoding="utf-8") as file:
            writer = csv.DictWriter(file, fieldnames=list(rows[0]), delimiter="\t", lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)
        kind = "evaluations" if any(job.report is not None for job in self.jobs) else "runs"
        print(f"\n{len(rows)} {kind} (also in {table}):", flush=True)
        print(aligned(rows, leave_out=TSV_ONLY), flush=True)


def summary_rows(jobs: list[FinishedJob]) -> list[dict[str, str]]:
    """One row per job, in job order: its number, the swept options that set it apart (one column
    each), its results, all its overrides and where its results are ("-" for a result a job left
    none of)."""
    jobs = sorted(jobs, key=lambda job: job.number)
    overrides = [job.overrides for job in jobs]
    same_length = len({len(job) for job in overrides}) == 1  # else no position-wise comparison
    rows = []
    for job in jobs:
        row = {"job": f"#{job.number}"}
        for override in (swept_values(job.overrides, overrides) if same_length else []):
            key, _, value = override.partition("=")
            row[key] = value
        row.update(_evaluation_columns(job) if job.report is not None else _training_columns(job))
        rows.append(row)
    return rows


def _training_columns(job: FinishedJob) -> dict[str, str]:
    """From the run's summary.json: the model's parameters, the updates, complete epochs and best
    validation score; the job's time; its overrides and best checkpoint."""
    summary = _read_summary(job.run_dir / "summary.json")
    parameters, score = summary.get("parameters"), summary.get("best_score")
    return {"parameters": f"{parameters:,}" if isinstance(parameters, int) else "-",
            "steps": str(summary.get("steps", "-")), "epochs": str(summary.get("epochs", "-")),
            "seconds": f"{job.seconds:.0f}", "metric": str(summary.get("best_metric", "-")),
            "best": "failed" if job.failure else _number(score), "overrides": " ".join(job.overrides),
            "best_checkpoint": str(summary.get("best_checkpoint") or "-"), "error": job.failure or ""}


def _evaluation_columns(job: FinishedJob) -> dict[str, str]:
    """From the evaluation's report: its test set, BLEU, chrF, TER and decoding rate; its overrides
    and the checkpoint evaluated."""
    report, scores = job.report, job.report.get("scores", {})
    return {"test_set": str(report.get("test_set", "-")),
            **{name: _number(scores.get(name, {}).get("score")) for name in ("bleu", "chrf", "ter")},
            "sentences_per_s": _number(report.get("sentences_per_second"), ".1f"),
            "overrides": " ".join(job.overrides), "checkpoint": str(report.get("checkpoint", "-"))}


def _number(value, spec: str = ".2f") -> str:
    return format(value, spec) if isinstance(value, (int, float)) else "-"


def aligned(rows: list[dict[str, str]], leave_out: tuple[str, ...] = ()) -> str:
    """The rows as a table of left-aligned columns, headed by their names."""
    columns = [column for column in rows[0] if column not in leave_out]
    widths = {column: max(len(column), *(len(row.get(column, "")) for row in rows)) for column in columns}
    lines = ["  ".join(column.ljust(widths[column]) for column in columns)]
    lines += ["  ".join(row.get(column, "").ljust(widths[column]) for column in columns) for row in rows]
    return "\n".join(line.rstrip() for line in lines)


def _read_summary(path: Path) -> dict:
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return summary if isinstance(summary, dict) else {}
