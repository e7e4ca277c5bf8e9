"""Load benchmark for nmt-serve (not a test): a bounded number of one-sentence requests from concurrent
clients on loopback, against the server with and without server-side batching.

    python scripts/load_test.py --checkpoint runs/small_additive/checkpoints/best.pt
    python scripts/load_test.py --checkpoint CKPT --requests 1000 --clients 50 --beam-size 5 --json out.json

For each mode it starts `nmt-serve` on a free 127.0.0.1 port (batching: the configs/serve.yaml defaults;
no batching: batching.max_sentences=1, so every request is its own model call), sends a few warm-up
requests, then the timed requests from `--clients` concurrent clients, and stops the server. The same
sentences go to both, and the translations are compared. The client runs on the same machine as the
server, so on a small CPU it takes some of the server's time: compare the modes, not the absolute figures.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing

from nmt.cli.common import positive_int, run_script  # noqa: E402
from nmt.cli.stdout_errors import ArgumentParser  # noqa: E402
from nmt.data.readers import CONVERT_TO_UTF8, read_lines  # noqa: E402
from nmt.errors import NMTError  # noqa: E402

FALLBACK_SENTENCES = [
    "Ein Hund rennt über die Wiese.", "Zwei Männer spielen Fußball im Park.", "Eine Frau liest ein Buch.",
    "Ein kleines Mädchen klettert in ein Spielhaus aus Holz.", "Ein Mann fährt mit dem Fahrrad die Straße entlang.",
    "Drei Kinder stehen vor einem blauen Haus und lachen.", "Eine Gruppe von Menschen wartet auf den Bus.",
    "Ein Junge springt in einen See.",
]
MODES = {"batching": [], "no batching": ["batching.max_sentences=1"]}


def read_sentences(path: str | None) -> list[str]:
    """Lines of a text file (.gz too); default: the Multi30k 2016 test set where found, else a few built in."""
    if path is None:
        root = Path(os.environ.get("NMT_DATA_DIR", Path(__file__).resolve().parents[2] / "shared" / "data"))
        default = root / "multi30k" / "test_2016_flickr.de.gz"
        if not default.is_file():
            return FALLBACK_SENTENCES
        path = str(default)
    return [line.strip() for line in read_lines(path, hint=CONVERT_TO_UTF8) if line.strip()]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(checkpoint: str, overrides: list[str], log_path: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    log = log_path.open("w")
    process = subprocess.Popen([sys.executable, "-m", "nmt.cli.serve", f"checkpoint={checkpoint}", f"port={port}",
                                "log_level=warning", *overrides], stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:  # e.g. a bad --server-args value: the server's own error line says which
            said = log_path.read_text(errors="replace").strip().splitlines()
            raise NMTError(f"nmt-serve exited with status {process.returncode}"
                           f"{': ' + said[-1] if said else ''} (log: {log_path})")
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return process, url
        except httpx.TransportError:
            time.sleep(0.2)
    process.kill()
    raise NMTError(f"nmt-serve did not start within 120 s; see {log_path}")


async def run_load(url: str, sentences: list[str], args) -> dict:
    """`args.requests` requests, each one sentence, from `args.clients` clients; stops at `args.max_seconds`."""
    latencies: list[float] = []
    batch_sizes: list[int] = []
    errors: dict[str, int] = {}
    translations: dict[int, str] = {}
    next_index = 0
    limits = httpx.Limits(max_connections=args.clients, max_keepalive_connections=args.clients)
    async with httpx.AsyncClient(base_url=url, timeout=args.request_timeout, limits=limits) as http:
        for i in range(args.warmup):
            await http.post("/translate", json={"text": sentences[i % len(sentences)], "beam_size": args.beam_size})
        start = time.perf_counter()
        stop_at = start + args.max_seconds

        async def client() -> None:
            nonlocal next_index
            while next_index < args.requests and time.perf_counter() < stop_at:
                i, next_index = next_index, next_index + 1
                sent = time.perf_counter()
                try:
                    answer = await http.post("/translate", json={"text": sentences[i % len(sentences)],
                                                                 "beam_size": args.beam_size})
                except httpx.HTTPError as exc:
                    errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                    continue
                if answer.status_code != 200:
                    errors[str(answer.status_code)] = errors.get(str(answer.status_code), 0) + 1
                    continue
                latencies.append(time.perf_counter() - sent)
                body = answer.json()
                batch_sizes.append(body["batch_sentences"])
                translations[i] = body["translations"][0][0]["text"]

        await asyncio.gather(*(client() for _ in range(args.clients)))
        seconds = time.perf_counter() - start
    latencies.sort()
    return {"requests": next_index, "ok": len(latencies), "errors": errors, "seconds": round(seconds, 2),
            "requests_per_second": round(len(latencies) / seconds, 1),
            "p50_ms": round(1000 * percentile(latencies, 50), 1), "p99_ms": round(1000 * percentile(latencies, 99), 1),
            "mean_batch_sentences": round(statistics.fmean(batch_sizes), 1) if batch_sizes else 0.0,
            "translations": translations}


def percentile(sorted_values: list[float], p: float) -> float:
    if not sorted_values:
        return float("nan")
    rank = min(len(sorted_values) - 1, max(0, round(p / 100 * len(sorted_values) + 0.5) - 1))  # nearest rank
    return sorted_values[rank]


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              check=True, cwd=Path(__file__).parent).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main() -> None:
    parser = ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--requests", type=positive_int, default=1000)
    parser.add_argument("--clients", type=positive_int, default=50)
    parser.add_argument("--beam-size", type=int, default=5)
    parser.add_argument("--input", help="sentences to send, one a line (default: Multi30k test_2016_flickr.de)")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--request-timeout", type=float, default=300.0)
    parser.add_argument("--max-seconds", type=float, default=1200.0, help="stop sending after this long, per mode")
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=list(MODES))
    parser.add_argument("--server-args", nargs="*", default=[], metavar="KEY=VALUE",
                        help="nmt-serve overrides for both modes, e.g. num_threads=1")
    parser.add_argument("--json", help="also write the figures here")
    parser.add_argument("--log-dir", default=".", help="where the servers' logs go")
    args = parser.parse_args()

    sentences = read_sentences(args.input)
    if not sentences:
        raise NMTError(f"--input {args.input} has no non-blank line to send")
    try:
        Path(args.log_dir).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise NMTError(f"cannot create --log-dir {args.log_dir}: {exc.strerror}") from None
    import torch  # only for the record of what ran

    setup = {"checkpoint": args.checkpoint, "requests": args.requests, "clients": args.clients,
             "beam_size": args.beam_size, "sentences": len(sentences), "commit": git_commit(),
             "cpu": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
             "torch": torch.__version__, "device": "cpu", "server_args": args.server_args,
             "load_average_before": [round(x, 2) for x in os.getloadavg()]}
    print(json.dumps(setup))
    results = {}
    for mode in args.modes:
        process, url = start_server(args.checkpoint, ["device=cpu", *args.server_args, *MODES[mode]],
                                    Path(args.log_dir) / f"load_test_{mode.replace(' ', '_')}.log")
        try:
            results[mode] = asyncio.run(run_load(url, sentences, args))
        finally:
            process.terminate()
            process.wait(timeout=30)
        results[mode]["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
        shown = {k: v for k, v in results[mode].items() if k != "translations"}
        print(mode, json.dumps(shown), flush=True)

    if len(results) == 2:
        a, b = (results[m]["translations"] for m in MODES)
        both = sorted(a.keys() & b.keys())
        differing = [i for i in both if a[i] != b[i]]
        print(f"identical translations in both modes: {len(both) - len(differing)} of {len(both)}")
        for i in differing[:5]:  # batched and single runs round differently; a near-tie can flip
            print(f"  request {i}: {sentences[i % len(sentences)]!r}\n    batching:    {a[i]!r}\n"
                  f"    no batching: {b[i]!r}")
    print("\n| mode | requests ok | seconds | requests/s | p50 ms | p99 ms | mean sentences per model call |")
    print("|---|---|---|---|---|---|---|")
    for mode, r in results.items():
        print(f"| {mode} | {r['ok']} of {r['requests']} | {r['seconds']} | {r['requests_per_second']} | "
              f"{r['p50_ms']} | {r['p99_ms']} | {r['mean_batch_sentences']} |")
    if args.json:
        figures = {m: {k: v for k, v in r.items() if k != "translations"} for m, r in results.items()}
        Path(args.json).write_text(json.dumps({"setup": setup, "results": figures}, indent=2) + "\n")
    failed = [f"{mode}: {', '.join(f'{n} x {what}' for what, n in r['errors'].items())}"
              for mode, r in results.items() if r["ok"] == 0]
    if failed:  # no figure measured anything; e.g. --beam-size above the server's limit gives 422s
        raise NMTError(f"every request failed ({'; '.join(failed)}: HTTP statuses or client errors)")


if __name__ == "__main__":
    run_script(main)  # a mistake (a missing file, a server that cannot start): one error line, exit status 2
