"""nmt-evaluate: `nmt-evaluate checkpoint=PATH split=test_2016_flickr beam_size=5`."""

from nmt.cli.common import hydra_command, log_to_stderr
from nmt.inference.evaluate import evaluate


def run(cfg) -> None:
    log_to_stderr()
    evaluate(cfg)


main = hydra_command("evaluate", run)

if __name__ == "__main__":
    main()
