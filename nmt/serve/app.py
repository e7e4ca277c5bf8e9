"""The FastAPI app: POST /translate, GET /health, GET /model, and the attention page at GET /.

The model is loaded once, before the app is built; nothing a request sends names a file, a model or a
device, and request bodies are JSON parsed by pydantic (never unpickled). Every error, the limits
included, is a JSON body `{"error": code, "detail": words}`.
"""

import glob
import json
import logging
from contextlib import asynccontextmanager
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path

import torch
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.exceptions import HTTPException

import nmt
from nmt.errors import ConfigError, DecodingError
from nmt.inference.translator import Translation, Translator
from nmt.serve.batcher import Batcher, Overloaded
from nmt.serve.schemas import (
    BleuRecord,
    ErrorResponse,
    Hypothesis,
    Limits,
    ModelInfo,
    TranslateRequest,
    TranslateResponse,
    WordAttention,
)
from nmt.viz.word_level import merge_to_words

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"
ASSET_TYPES = {"app.js": "text/javascript; charset=utf-8", "style.css": "text/css; charset=utf-8"}
# The page may load nothing from anywhere but this server.
PAGE_POLICY = ("default-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; "
               "frame-ancestors 'none'")
ERRORS = {status: {"model": ErrorResponse} for status in (413, 422, 503)}
# A batching window is a few milliseconds of latency traded for throughput; beyond this a request
# would wait so long for company that it looks unanswered, and a stopping server would wait for it
# (window_ms=inf answered nothing, and SIGTERM did not stop the server).
MAX_WINDOW_MS = 10_000


@dataclass(frozen=True)
class ServeSettings:
    """What the server decides at start: search options, request limits and batching (configs/serve.yaml)."""

    beam_size: int             # for requests that give none
    length_penalty: float
    no_repeat_ngram_size: int  # 0: off
    max_len_a: float
    max_len_b: int
    max_output_len: int | None  # null: no cap
    batch_sentences: int       # the translator's own batch size inside one model call
    max_text_chars: int
    max_texts: int
    max_beam_size: int
    window_ms: float
    max_batch_sentences: int
    max_pending: int
    num_threads: int | None    # torch CPU threads of the model's thread (None: torch's default)

    @classmethod
    def from_config(cls, cfg) -> "ServeSettings":
        limits, batching = cfg.limits, cfg.batching
        settings = cls(beam_size=cfg.beam_size, length_penalty=cfg.length_penalty,
                       no_repeat_ngram_size=cfg.no_repeat_ngram_size, max_len_a=cfg.max_len_a,
                       max_len_b=cfg.max_len_b, max_output_len=cfg.max_output_len,
                       batch_sentences=cfg.batch_sentences,
                       max_text_chars=limits.max_text_chars, max_texts=limits.max_texts,
                       max_beam_size=limits.max_beam_size, window_ms=batching.window_ms,
                       max_batch_sentences=batching.max_sentences, max_pending=batching.max_pending,
                       num_threads=cfg.num_threads)
        settings.check()
        return settings

    def check(self) -> None:
        counts = ("beam_size", "batch_sentences", "max_text_chars", "max_texts", "max_beam_size",
                  "max_batch_sentences", "max_pending")
        for name in counts:
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.num_threads is not None and self.num_threads < 1:
            raise ConfigError(f"num_threads must be at least 1 (or null), got {self.num_threads}")
        if self.no_repeat_ngram_size < 0:
            raise ConfigError(f"no_repeat_ngram_size must be >= 0 (0: off), got {self.no_repeat_ngram_size}")
        if not 0 <= self.window_ms <= MAX_WINDOW_MS:  # also nan
            raise ConfigError(f"batching.window_ms must be from 0 to {MAX_WINDOW_MS}, got {self.window_ms}")
        if self.beam_size > self.max_beam_size:
            raise ConfigError(f"beam_size={self.beam_size} is above limits.max_beam_size={self.max_beam_size}")
        if self.max_pending < self.max_texts:
            raise ConfigError(f"batching.max_pending={self.max_pending} must be at least "
                              f"limits.max_texts={self.max_texts}, or the largest request never fits")

    @property
    def limits(self) -> Limits:
        # JSON may spell a character as a 6-byte \uXXXX escape, 12 for one outside the BMP (a surrogate
        # pair, e.g. an emoji, as json.dumps writes it); allow 12 a character plus room for the other
        # fields, so any body within the text limits gets through.
        body = 2 * 12 * self.max_text_chars * self.max_texts + 64 * 1024  # texts and as long prefixes
        return Limits(max_text_chars=self.max_text_chars, max_texts=self.max_texts,
                      max_beam_size=self.max_beam_size, max_body_bytes=body)


class ApiError(HTTPException):
    """An HTTP error with a stable code for clients: {"error": code, "detail": detail}."""

    def __init__(self, status: int, code: str, detail: str):
        super().__init__(status, detail)
        self.code = code


def check_request(texts: list[str], beam_size: int, nbest: int, settings: ServeSettings,
                  prefixes: list[str] | None = None) -> None:
    if len(texts) > settings.max_texts:
        raise ApiError(413, "too_many_texts", f"{len(texts)} texts in one request; the limit is {settings.max_texts}")
    if prefixes is not None and len(prefixes) != len(texts):
        raise ApiError(422, "prefix_mismatch", f"{len(prefixes)} prefixes for {len(texts)} texts: give one per "
                                               "text, a string with a string and a list with a list")
    for name, strings in (("text", texts), ("prefix", prefixes or [])):
        for i, text in enumerate(strings):
            if len(text) > settings.max_text_chars:
                raise ApiError(413, f"{name}_too_long", f"{name} {i} has {len(text)} characters; "
                                                        f"the limit is {settings.max_text_chars}")
            if not text.isascii() and not _encodes_as_utf8(text):
                # JSON may escape a lone surrogate ("\ud800"); SentencePiece would fail the whole batch on it.
                raise ApiError(422, "invalid_request", f"{name} {i} holds a lone surrogate, which is not text")
    if beam_size > settings.max_beam_size:
        raise ApiError(422, "beam_size_too_large", f"beam_size={beam_size}; the limit is {settings.max_beam_size}")
    if nbest > beam_size:
        raise ApiError(422, "nbest_above_beam_size", f"nbest={nbest} needs beam_size >= {nbest}, got {beam_size}")


def request_prefixes(request: TranslateRequest) -> list[str] | None:
    """The request's prefixes as a list parallel to its texts; a string prefix goes with a string text only."""
    if request.prefix is None:
        return None
    if isinstance(request.prefix, str) != isinstance(request.text, str):
        raise ApiError(422, "prefix_mismatch", "give one prefix string with one text, or a list of prefixes "
                                               "with a list of texts")
    return [request.prefix] if isinstance(request.prefix, str) else request.prefix


def _encodes_as_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def to_hypothesis(translation: Translation) -> Hypothesis:
    attention = words = None
    if translation.attention is not None:
        weights = translation.attention.detach().to("cpu").double()  # (T, S)
        attention = weights.round(decimals=6).tolist()  # 6 decimals: short JSON, rows still sum to 1 +- 1e-5
        merged, src_words, tgt_words = merge_to_words(weights, translation.src_pieces, translation.tgt_pieces)
        words = WordAttention(src_words=src_words, tgt_words=tgt_words, weights=merged.round(6).tolist())
    return Hypothesis(text=translation.text, score=translation.score, src_pieces=translation.src_pieces,
                      tgt_pieces=translation.tgt_pieces, attention=attention, word_attention=words)


def recorded_bleu(checkpoint: Path) -> list[BleuRecord]:
    """BLEU that nmt-evaluate wrote next to the checkpoint, as
    `<stem>.<test set>.beam<k>[.lp<alpha>][.cp<beta>][.norepeat<n>].json`, each with its decoding settings."""
    records = []
    for path in sorted(checkpoint.parent.glob(f"{glob.escape(checkpoint.stem)}.*.beam*.json")):
        try:
            report = json.loads(path.read_text(encoding="utf-8"))
            bleu = report["scores"]["bleu"]
            records.append(BleuRecord(test_set=report["test_set"], beam_size=report["beam_size"],
                                      length_penalty=report.get("length_penalty", 1.0),
                                      coverage_penalty=report.get("coverage_penalty") or 0.0,
                                      no_repeat_ngram_size=report.get("no_repeat_ngram_size") or 0,
                                      bleu=bleu["score"], signature=bleu.get("signature", "")))
        except (OSError, ValueError, KeyError, TypeError) as exc:  # pydantic's errors are ValueErrors
            log.warning("ignoring %s: not an nmt-evaluate report (%s)", path, exc)
    return records


def describe_model(translator: Translator, checkpoint: Path, settings: ServeSettings) -> ModelInfo:
    model_cfg, data_cfg = translator.config["model"], translator.config["data"]
    return ModelInfo(
        checkpoint=checkpoint.name, direction=f"{data_cfg['src_lang']}-{data_cfg['tgt_lang']}",
        attention=model_cfg["attention"]["name"], decoder_style=model_cfg["decoder_style"],
        rnn_type=model_cfg["rnn_type"], bidirectional_encoder=bool(model_cfg["bidirectional"]),
        parameters=sum(p.numel() for p in translator.model.parameters()),
        vocab_size={"src": translator.tokenizers.src.vocab_size, "tgt": translator.tokenizers.tgt.vocab_size},
        device=str(translator.device), default_beam_size=settings.beam_size, bleu=recorded_bleu(checkpoint),
        limits=settings.limits)


class BodySizeLimit:
    """Refuses a request body over `max_bytes` with 413 before it is parsed, whether or not the client
    sent Content-Length (a chunked body is counted as it arrives)."""

    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        too_large = ApiError(413, "body_too_large", f"the request body is over {self.max_bytes} bytes")
        length = dict(scope["headers"]).get(b"content-length", b"0")
        if length.isdigit() and int(length) > self.max_bytes:
            return await error_json(too_large)(scope, receive, send)
        received = 0

        async def counting_receive():
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                raise too_large  # FastAPI passes HTTPExceptions raised while reading the body through
            return message

        await self.app(scope, counting_receive, send)


def error_json(exc: HTTPException) -> JSONResponse:
    code = getattr(exc, "code", None) or HTTPStatus(exc.status_code).phrase.lower().replace(" ", "_")
    return JSONResponse({"error": code, "detail": str(exc.detail)}, exc.status_code, headers=exc.headers)


async def error_response(_request: Request, exc: HTTPException) -> JSONResponse:
    if exc.status_code == 400 and not isinstance(exc, ApiError):
        # FastAPI's answer to a body it cannot decode (not UTF-8): malformed, like any other bad body.
        return JSONResponse({"error": "invalid_request", "detail": "the body is not UTF-8 encoded JSON"}, 422)
    return error_json(exc)


def describe_problem(error: dict) -> str:
    """One pydantic error in words; `text` gets one message instead of one per branch of its type."""
    where = ".".join(str(p) for p in error["loc"] if p != "body")
    if error["type"] == "json_invalid":
        return f"the body is not valid JSON ({error.get('ctx', {}).get('error', 'cannot parse it')})"
    if where.startswith("text") and error["type"] != "missing":
        return "text: must be a string or a non-empty list of strings"
    return f"{where or 'body'}: {error['msg']}"


async def validation_response(_request: Request, exc: RequestValidationError) -> JSONResponse:
    problems = dict.fromkeys(describe_problem(e) for e in exc.errors())  # unique, in order
    return JSONResponse({"error": "invalid_request", "detail": "; ".join(problems)}, 422)


async def internal_error_response(_request: Request, exc: Exception) -> JSONResponse:
    log.error("unexpected error: %r", exc)
    return JSONResponse({"error": "internal_error", "detail": "the server failed; see its log"}, 500)


def read_static() -> tuple[str, dict[str, bytes]]:
    """The page and its assets, read once: requests pick an asset by name from this dict, never by path."""
    page = (STATIC_DIR / "index.html").read_text(encoding="utf-8")
    return page, {name: (STATIC_DIR / name).read_bytes() for name in ASSET_TYPES}


def create_app(translator: Translator, settings: ServeSettings, checkpoint: str | Path) -> FastAPI:
    info = describe_model(translator, Path(checkpoint), settings)
    page, assets = read_static()

    def translate_batch(texts: list[str], beam_size: int, nbest: int, attention: bool,
                        prefixes: list[str]) -> list[list[Translation]]:
        return translator.translate(texts, beam_size=beam_size, nbest=nbest, return_attention=attention,
                                    prefixes=prefixes if any(prefixes) else None,
                                    length_penalty=settings.length_penalty,
                                    no_repeat_ngram_size=settings.no_repeat_ngram_size, max_len_a=settings.max_len_a,
                                    max_len_b=settings.max_len_b, max_output_len=settings.max_output_len,
                                    batch_sentences=settings.batch_sentences)

    def setup_model_thread() -> None:
        # Thread counts are per thread for OpenMP: set it where the model runs, not in the main thread.
        if settings.num_threads is not None:
            torch.set_num_threads(settings.num_threads)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        # Made here, not above: a batcher belongs to one event loop and one server run.
        app.state.batcher = Batcher(translate_batch, window_s=settings.window_ms / 1000,
                                    max_sentences=settings.max_batch_sentences, max_pending=settings.max_pending,
                                    thread_setup=setup_model_thread)
        await app.state.batcher.start()
        try:
            yield
        finally:
            await app.state.batcher.stop()

    app = FastAPI(title="nmt translation server", version=nmt.__version__, lifespan=lifespan,
                  description=f"{info.direction} translation with {info.attention} attention; "
                              "the attention page is at /.")
    app.add_middleware(BodySizeLimit, max_bytes=settings.limits.max_body_bytes)
    app.add_exception_handler(HTTPException, error_response)
    app.add_exception_handler(RequestValidationError, validation_response)
    app.add_exception_handler(Exception, internal_error_response)

    @app.post("/translate", response_model=TranslateResponse, responses=ERRORS)
    async def translate(request: TranslateRequest) -> TranslateResponse:
        """Translates one text or a list; concurrent requests with the same search share a model call."""
        texts = [request.text] if isinstance(request.text, str) else request.text
        prefixes = request_prefixes(request)
        beam_size = request.beam_size or settings.beam_size
        check_request(texts, beam_size, request.nbest, settings, prefixes)
        try:
            result = await app.state.batcher.submit(texts, beam_size, request.nbest, request.return_attention,
                                                    prefixes)
        except Overloaded as exc:
            raise ApiError(503, "overloaded", str(exc)) from None
        except DecodingError as exc:  # the model ran out of memory on this request's batch; the server goes on
            raise ApiError(503, "out_of_memory", str(exc)) from None
        return TranslateResponse(
            translations=[[to_hypothesis(t) for t in nbest_list] for nbest_list in result.translations],
            beam_size=beam_size, batch_sentences=result.batch_sentences)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/model", response_model=ModelInfo)
    async def model() -> ModelInfo:
        return info

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index() -> HTMLResponse:
        return HTMLResponse(page, headers={"Content-Security-Policy": PAGE_POLICY})

    @app.get("/static/{name}", include_in_schema=False)
    async def asset(name: str) -> Response:
        if name not in assets:
            raise ApiError(404, "not_found", f"no asset named {name!r}")
        return Response(assets[name], media_type=ASSET_TYPES[name])

    return app
