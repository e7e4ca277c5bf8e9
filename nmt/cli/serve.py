"""nmt-serve: `nmt-serve checkpoint=PATH [port=8000]`; the API and the attention page at http://127.0.0.1:8000/."""

import ipaddress
import logging
import socket
import sys

import uvicorn
from uvicorn.config import LOG_LEVELS

from nmt.cli.checks import check_decoding_options, check_positive_int, check_single_checkpoint, fail
from nmt.cli.common import hydra_command, log_to_stderr
from nmt.errors import ConfigError
from nmt.inference.translator import Translator
from nmt.serve.app import MAX_WINDOW_MS, ServeSettings, create_app
from nmt.training.runtime import too_many_threads_warning
from nmt.values import is_int, is_number

log = logging.getLogger(__name__)


def check_server_options(cfg) -> None:
    """host, port and log_level; whether the address can be bound is checked by binding it."""
    port = cfg.get("port")
    if not (is_int(port) and 0 <= port <= 65535):
        fail("port", "an integer from 0 to 65535 (0: any free port)", port)
    host = cfg.get("host")
    if not (isinstance(host, str) and host.strip()):
        fail("host", "an IP address or a host name", host)
    if host.replace(".", "").isdigit():  # 999.1.1.1 would otherwise be looked up as a host name
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            fail("host", "an IP address (four numbers from 0 to 255) or a host name", host)
    if cfg.get("log_level") not in LOG_LEVELS:
        fail("log_level", f"one of {', '.join(LOG_LEVELS)}", cfg.get("log_level"))


def check_serve_limits(cfg) -> None:
    """Kinds of limits.* and batching.* (ServeSettings checks how they relate)."""
    for option in ("limits.max_text_chars", "limits.max_texts", "limits.max_beam_size",
                   "batching.max_sentences", "batching.max_pending"):
        check_positive_int(cfg, option)
    window = cfg.batching.get("window_ms")
    if not (is_number(window) and 0 <= window <= MAX_WINDOW_MS):  # inf (and nan) refused: see MAX_WINDOW_MS
        fail("batching.window_ms", f"a number of milliseconds from 0 to {MAX_WINDOW_MS}", window)
    threads = cfg.get("num_threads")
    if threads is not None and not (is_int(threads) and threads >= 1):
        fail("num_threads", "null or a positive integer", threads)


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound before the model loads: uvicorn reports a port in use or an
    unknown host in several log lines (or a traceback) and exits 1."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn: restart during TIME_WAIT
        sock.bind(address)
    except OSError as exc:
        raise ConfigError(f"cannot listen on host={host} port={port}: {exc.strerror or exc}") from None
    return sock


def run(cfg) -> None:
    log_to_stderr()
    check_server_options(cfg)
    check_single_checkpoint(cfg)
    check_decoding_options(cfg)
    check_serve_limits(cfg)
    settings = ServeSettings.from_config(cfg)  # before loading the model: a bad limit fails at once
    if warning := too_many_threads_warning(settings.num_threads, "num_threads"):
        log.warning(warning)
    sock = bind(cfg.host, cfg.port)
    translator = Translator.load(cfg.checkpoint, cfg.device)
    app = create_app(translator, settings, cfg.checkpoint)
    server = uvicorn.Server(uvicorn.Config(app, host=cfg.host, port=cfg.port, log_level=cfg.log_level))
    # uvicorn announces the address only for sockets it binds itself.
    host = f"[{cfg.host}]" if ":" in cfg.host else cfg.host
    log.info("serving %s on http://%s:%d/ (Ctrl-C to stop)", cfg.checkpoint, host, sock.getsockname()[1])
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:  # Ctrl-C is how a server is stopped, as under uvicorn.run
        pass
    if not server.started:  # uvicorn has logged why (as uvicorn.run does, exit 1)
        sys.exit(1)


main = hydra_command("serve", run, usage="nmt-serve checkpoint=PATH [port=8000]")

if __name__ == "__main__":
    main()
