"""nmt-serve: `nmt-serve checkpoint=PATH [port=8000]`; the API and the attention page at http://127.0.0.1:8000/."""

import uvicorn

from nmt.cli.common import hydra_command, log_to_stderr
from nmt.inference.translator import Translator
from nmt.serve.app import ServeSettings, create_app


def run(cfg) -> None:
    log_to_stderr()
    settings = ServeSettings.from_config(cfg)  # before loading the model: a bad limit fails at once
    translator = Translator.load(cfg.checkpoint, cfg.device)
    app = create_app(translator, settings, cfg.checkpoint)
    uvicorn.run(app, host=cfg.host, port=cfg.port, log_level=cfg.log_level)


main = hydra_command("serve", run)

if __name__ == "__main__":
    main()
