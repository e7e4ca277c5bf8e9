"""nmt-evaluate: `nmt-evaluate checkpoint=PATH split=test_2016_flickr beam_size=5`.

`checkpoint=[A,B,...]` scores the ensemble of those models (nmt.inference.ensemble).
"""

from nmt.analysis.interactive import UNITS
from nmt.cli.checks import check_bool, check_decoding_options, check_inputs_exist, check_paths
from nmt.cli.common import hydra_command, log_to_stderr
from nmt.cli.outputs import check_writable_folder
from nmt.errors import ConfigError
from nmt.files import folder_write_problem
from nmt.inference.evaluate import evaluate, report_path


def check_options(cfg) -> None:
    check_paths(cfg, "src_file", "ref_file", "data_root", "output_dir")
    check_decoding_options(cfg)
    check_bool(cfg, "attention_stats")
    check_bool(cfg, "reference_perplexity")
    check_bool(cfg, "interactive_simulation")
    if cfg.interactive_unit not in UNITS:
        raise ConfigError(f"interactive_unit={cfg.interactive_unit!r} is not valid; choose one of: {', '.join(UNITS)}")
    if cfg.output_dir:
        check_writable_folder(cfg.output_dir, "output_dir")
    check_inputs_exist(cfg, "src_file", "ref_file")  # after the values: a mistaken one is the first thing to mend
    if not cfg.output_dir:
        check_checkpoint_folder(cfg)


def check_checkpoint_folder(cfg) -> None:
    """The reports go next to the checkpoint when output_dir is not given: a folder they cannot be
    written in is found out before the decoding, not after it."""
    folder = report_path(cfg).parent
    problem = folder_write_problem(folder) if folder.is_dir() else None
    if problem is not None:
        raise ConfigError(f"cannot write the report next to the checkpoint ({problem}); give output_dir=FOLDER")


def run(cfg) -> dict:
    log_to_stderr()
    check_options(cfg)
    return evaluate(cfg)  # the report, for a sweep's table (nmt.cli.sweep_summary)


def outputs(cfg) -> dict[str, tuple[str, str]]:
    """The files a job writes, with the option that places them: two jobs of a sweep must not write the same report."""
    return {"its report": ("output_dir", f"{report_path(cfg)}.json")}


main = hydra_command("evaluate", run, check_options=check_options, job_outputs=outputs,
                     usage="nmt-evaluate checkpoint=PATH split=test_2016_flickr (or src_file=PATH ref_file=PATH)")

if __name__ == "__main__":
    main()
