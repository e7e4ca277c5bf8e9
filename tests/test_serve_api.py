"""The HTTP API through FastAPI's TestClient: answer shapes, attention rows summing to 1, a JSON error
for each limit, and server-side batching giving the same translations as one request at a time."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from fastapi.testclient import TestClient
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from nmt.cli.common import config_dir
from nmt.data.batching import collate
from nmt.data.tokenizer import PAD, SubwordTokenizer, Tokenizers
from nmt.errors import ConfigError
from nmt.inference.translator import Translation, Translator
from nmt.models.seq2seq import build_model
from nmt.serve.app import ServeSettings, create_app
from nmt.serve.batcher import Batcher, Overloaded
from nmt.training.checkpoint import save_checkpoint

PAIRS = [
    ("Ein Hund rennt über die Wiese.", "A dog runs across the meadow."),
    ("Zwei Männer spielen Fußball.", "Two men play soccer."),
    ("Eine Frau liest ein Buch.", "A woman reads a book."),
    ("Ein Kind spielt im Sand.", "A child plays in the sand."),
    ("Drei Hunde laufen im Park.", "Three dogs run in the park."),
    ("Ein Mann fährt Fahrrad.", "A man rides a bike."),
    ("Zwei Frauen lachen.", "Two women laugh."),
    ("Ein Mädchen singt ein Lied.", "A girl sings a song."),
    ("Ein Junge springt ins Wasser.", "A boy jumps into the water."),
    ("Eine Katze schläft auf dem Sofa.", "A cat sleeps on the sofa."),
    ("Die Männer arbeiten auf der Straße.", "The men work on the street."),
    ("Ein Hund spielt mit einem Ball.", "A dog plays with a ball."),
]
SOURCES = [de for de, _ in PAIRS]


def serve_config(checkpoint: Path, *overrides: str):
    """configs/serve.yaml as nmt-serve composes it, with overrides."""
    with initialize_config_dir(config_dir=config_dir(), version_base=None):
        return compose("serve", overrides=[f"checkpoint={checkpoint}", *overrides])


def build_tiny_checkpoint(path: Path, steps: int = 60) -> Path:
    """A checkpoint of a tiny model trained in-process to memorize PAIRS (a few seconds on a CPU):
    sharp enough that searches end well before the length limit, and no corpus needed."""
    torch.manual_seed(0)
    with one_torch_thread():
        return _train_and_save(path, steps)


@contextlib.contextmanager
def one_torch_thread():
    """Matrices this small gain nothing from a second thread, and lose a lot on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _train_and_save(path: Path, steps: int) -> Path:
    with initialize_config_dir(config_dir=config_dir(), version_base=None):
        cfg = compose("train", overrides=["model.emb_size=32", "model.enc_hidden=32", "model.dec_hidden=48",
                                          "model.dropout=0.0", "tokenizer.vocab_size=90"])
    config = OmegaConf.to_container(cfg, resolve=True)
    shared = SubwordTokenizer.train([text for pair in PAIRS for text in pair], vocab_size=90)
    tokenizers = Tokenizers(shared, shared, joint=True)
    model = build_model(config["model"], shared.vocab_size, shared.vocab_size, shared_vocab=True)
    batch = collate(shared.encode(SOURCES), shared.encode([en for _, en in PAIRS]), range(len(PAIRS)))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.02)
    for _ in range(steps):
        optimizer.zero_grad()
        logits, _ = model(batch.src, batch.src_lengths, batch.tgt_in)  # (B, T, V)
        F.cross_entropy(logits.flatten(0, 1), batch.tgt_out.flatten(), ignore_index=PAD).backward()
        optimizer.step()
    save_checkpoint({"model": model.state_dict(), "config": config, "tokenizers": tokenizers.to_dict()}, path)
    return path


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    with one_torch_thread():
        yield


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    path = build_tiny_checkpoint(tmp_path_factory.mktemp("serve") / "best.pt")
    write_bleu_reports(path.parent)
    return path


def write_bleu_reports(folder: Path) -> None:
    """Two nmt-evaluate reports for best.pt: an older one without length_penalty, and one tuned to 1.5."""
    report = {"test_set": "test_2016_flickr", "beam_size": 5,
              "scores": {"bleu": {"score": 12.5, "signature": "nrefs:1|case:mixed|tok:13a"}}}
    (folder / "best.test_2016_flickr.beam5.json").write_text(json.dumps(report))
    tuned = {**report, "length_penalty": 1.5, "scores": {"bleu": {"score": 13.0, "signature": "nrefs:1"}}}
    (folder / "best.test_2016_flickr.beam5.lp1.5.json").write_text(json.dumps(tuned))
    covered = {**report, "length_penalty": 1.0, "coverage_penalty": 0.2, "no_repeat_ngram_size": 3,
               "scores": {"bleu": {"score": 12.75, "signature": "nrefs:1"}}}
    (folder / "best.test_2016_flickr.beam5.cp0.2.norepeat3.json").write_text(json.dumps(covered))


@pytest.fixture(scope="module")
def translator(checkpoint) -> Translator:
    return Translator.load(checkpoint, device="cpu")


def make_client(translator, checkpoint, *overrides: str) -> TestClient:
    settings = ServeSettings.from_config(serve_config(checkpoint, "num_threads=1", *overrides))
    return TestClient(create_app(translator, settings, checkpoint))


@pytest.fixture(scope="module")
def client(translator, checkpoint):
    with make_client(translator, checkpoint, "limits.max_text_chars=80", "limits.max_texts=8",
                     "limits.max_beam_size=4", "beam_size=2") as c:
        yield c


def test_a_single_text_gives_one_nbest_list_with_pieces(client):
    answer = client.post("/translate", json={"text": SOURCES[0]})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["beam_size"] == 2  # the server's default
    [[best]] = body["translations"]
    assert best["text"] == "A dog runs across the meadow."  # the memorized pair
    assert best["src_pieces"][-1] == best["tgt_pieces"][-1] == "</s>"
    assert best["attention"] is None and best["word_attention"] is None


def test_nbest_lists_hold_nbest_hypotheses_best_first(client):
    body = client.post("/translate", json={"text": SOURCES[:3], "beam_size": 4, "nbest": 3}).json()
    assert len(body["translations"]) == 3
    for nbest_list in body["translations"]:
        scores = [h["score"] for h in nbest_list]
        assert len(scores) == 3 and scores == sorted(scores, reverse=True)


def test_attention_has_one_row_per_target_piece_and_rows_sum_to_one(client):
    body = client.post("/translate", json={"text": SOURCES[:4], "return_attention": True}).json()
    for [best] in body["translations"]:
        weights = torch.tensor(best["attention"])
        assert weights.shape == (len(best["tgt_pieces"]), len(best["src_pieces"]))
        torch.testing.assert_close(weights.sum(-1), torch.ones(len(weights)), atol=1e-4, rtol=0)
        words = best["word_attention"]
        merged = torch.tensor(words["weights"])
        assert merged.shape == (len(words["tgt_words"]), len(words["src_words"]))
        assert len(words["src_words"]) < len(best["src_pieces"]) or len(words["src_words"]) == 2
        torch.testing.assert_close(merged.sum(-1), torch.ones(len(merged)), atol=1e-4, rtol=0)


def test_attention_matches_the_python_api(client, translator):
    [[expected]] = translator.translate([SOURCES[5]], beam_size=3, return_attention=True)
    [[best]] = client.post("/translate", json={"text": SOURCES[5], "beam_size": 3,
                                              "return_attention": True}).json()["translations"]
    assert best["text"] == expected.text and best["tgt_pieces"] == expected.tgt_pieces
    torch.testing.assert_close(torch.tensor(best["attention"], dtype=torch.float64), expected.attention.double(), atol=1e-5, rtol=0)


def test_a_prefix_steers_the_translation_as_the_python_api_does(client, translator):
    """The memorized model would say "A dog runs across the meadow."; told to begin with "The cat" it
    must, and continues as translate(prefixes=) does; a text without a prefix in the same request is free."""
    texts, prefixes = [SOURCES[0], SOURCES[1]], ["The cat", ""]
    expected = translator.translate(texts, beam_size=2, prefixes=prefixes)
    answer = client.post("/translate", json={"text": texts, "prefix": prefixes})
    assert answer.status_code == 200, answer.text
    [[steered], [free]] = answer.json()["translations"]
    assert steered["text"].startswith("The cat") and steered["text"] == expected[0][0].text
    assert steered["tgt_pieces"] == expected[0][0].tgt_pieces
    assert steered["score"] == pytest.approx(expected[0][0].score, abs=1e-4)
    assert free["text"] == "Two men play soccer."
    [[one]] = client.post("/translate", json={"text": SOURCES[0], "prefix": "The cat"}).json()["translations"]
    assert one["text"] == steered["text"]


def test_the_servers_ngram_blocking_translates_as_the_python_api_does(translator, checkpoint):
    free = translator.translate(SOURCES, beam_size=2)
    blocked = translator.translate(SOURCES, beam_size=2, no_repeat_ngram_size=1)
    assert [t[0].text for t in free] != [t[0].text for t in blocked]  # the setting has something to change
    with make_client(translator, checkpoint, "beam_size=2", "no_repeat_ngram_size=1") as c:
        answer = c.post("/translate", json={"text": SOURCES})
    assert answer.status_code == 200, answer.text
    assert [nbest[0]["text"] for nbest in answer.json()["translations"]] == [t[0].text for t in blocked]
    with pytest.raises(ConfigError, match="no_repeat_ngram_size must be >= 0"):
        ServeSettings.from_config(serve_config(checkpoint, "no_repeat_ngram_size=-2"))


def test_the_servers_length_penalty_and_length_limit_decode_as_the_python_api_does(translator, checkpoint):
    options = {"length_penalty": 0.5, "max_len_a": 0.5, "max_len_b": 1}
    expected = translator.translate(SOURCES[:3], beam_size=2, **options)
    default = translator.translate(SOURCES[:3], beam_size=2)
    assert [t[0].text for t in expected] != [t[0].text for t in default]  # the limit cuts some translations
    with make_client(translator, checkpoint, "beam_size=2", *(f"{key}={value}" for key, value in options.items())) as c:
        answer = c.post("/translate", json={"text": SOURCES[:3]})
    assert answer.status_code == 200, answer.text
    got = [nbest[0] for nbest in answer.json()["translations"]]
    assert [h["text"] for h in got] == [t[0].text for t in expected]
    assert [h["score"] for h in got] == pytest.approx([t[0].score for t in expected], abs=1e-5)


def test_the_servers_max_output_len_caps_its_translations_as_the_python_api_does(translator, checkpoint):
    expected = translator.translate(SOURCES[:3], beam_size=2, max_output_len=2)
    assert max(len(t[0].tgt_pieces) for t in expected) == 3  # two subwords and EOS
    assert [t[0].text for t in expected] != [t[0].text for t in translator.translate(SOURCES[:3], beam_size=2)]
    with make_client(translator, checkpoint, "beam_size=2", "max_output_len=2") as c:
        answer = c.post("/translate", json={"text": SOURCES[:3]})
    assert answer.status_code == 200, answer.text
    assert [nbest[0]["text"] for nbest in answer.json()["translations"]] == [t[0].text for t in expected]


def test_a_blank_text_gives_an_empty_translation(client):
    [[empty], [full]] = client.post("/translate", json={"text": ["   ", SOURCES[1]],
                                                        "return_attention": True}).json()["translations"]
    assert empty["text"] == "" and empty["attention"] is None
    assert full["text"] == "Two men play soccer."


@pytest.mark.parametrize(("body", "status", "code"), [
    ({"text": "x" * 81}, 413, "text_too_long"),
    ({"text": ["Ein Hund."] * 9}, 413, "too_many_texts"),
    ({"text": "Ein Hund.", "beam_size": 5}, 422, "beam_size_too_large"),
    ({"text": "Ein Hund.", "beam_size": 2, "nbest": 3}, 422, "nbest_above_beam_size"),
    ({"text": "Ein Hund.", "beam_size": 0}, 422, "invalid_request"),
    ({"text": []}, 422, "invalid_request"),
    ({"text": 42}, 422, "invalid_request"),
    ({"text": ["Ein Hund.", "\ud800"]}, 422, "invalid_request"),
    ({"text": "Ein Hund.", "beam_size": "3"}, 422, "invalid_request"),  # JSON types are not converted
    ({"text": "Ein Hund.", "beam_size": True}, 422, "invalid_request"),
    ({"text": "Ein Hund.", "return_attention": "yes"}, 422, "invalid_request"),  # valid JSON, not text: SentencePiece fails on it
    ({"beam_size": 2}, 422, "invalid_request"),
    ({"text": ["Ein Hund.", "Ein Mann."], "prefix": ["A"]}, 422, "prefix_mismatch"),
    ({"text": ["Ein Hund."], "prefix": "A"}, 422, "prefix_mismatch"),
    ({"text": "Ein Hund.", "prefix": ["A"]}, 422, "prefix_mismatch"),
    ({"text": "Ein Hund.", "prefix": "x" * 81}, 413, "prefix_too_long"),
    ({"text": "Ein Hund.", "prefix": "\ud800"}, 422, "invalid_request"),
    ({"text": "Ein Hund.", "prefix": 3}, 422, "invalid_request"),
    # The model is fixed at start: a request cannot name a checkpoint (or any other unknown field).
    ({"text": "Ein Hund.", "checkpoint": "/etc/passwd"}, 422, "invalid_request"),
])
def test_each_limit_gives_a_json_error(client, body, status, code):
    # json.dumps escapes a lone surrogate as JSON allows ("\\ud800"); httpx's json= would refuse it.
    answer = client.post("/translate", content=json.dumps(body).encode(), headers={"content-type": "application/json"})
    assert answer.status_code == status, answer.text
    assert answer.json()["error"] == code and answer.json()["detail"]


@pytest.mark.parametrize(("overrides", "message"), [
    (["beam_size=5", "limits.max_beam_size=4"], "beam_size=5 is above limits.max_beam_size=4"),
    (["limits.max_texts=64", "batching.max_pending=10"], "batching.max_pending=10 must be at least limits.max_texts=64"),
    (["batching.window_ms=inf"], "batching.window_ms must be from 0 to 10000, got inf"),  # nothing was answered
])
def test_settings_that_would_refuse_every_default_or_largest_request_are_refused_at_start(checkpoint, overrides,
                                                                                         message):
    with pytest.raises(ConfigError, match=message):
        ServeSettings.from_config(serve_config(checkpoint, *overrides))


def test_a_body_over_the_size_limit_is_refused_before_parsing(client):
    limit = client.get("/model").json()["limits"]["max_body_bytes"]
    big = json.dumps({"text": "a" * (limit + 1)}).encode()
    answer = client.post("/translate", content=big, headers={"content-type": "application/json"})
    assert answer.status_code == 413 and answer.json()["error"] == "body_too_large"

    def chunks():  # no Content-Length: counted as it arrives
        yield b'{"text": "'
        for _ in range(limit // 4096 + 1):
            yield b"a" * 4096
        yield b'"}'

    answer = client.post("/translate", content=chunks(), headers={"content-type": "application/json"})
    assert answer.status_code == 413 and answer.json()["error"] == "body_too_large"


def test_a_body_of_texts_within_the_limits_is_never_too_large(translator, checkpoint):
    """Characters outside the BMP (emoji) take 12 bytes each as JSON escapes; the body limit allows for it."""
    with make_client(translator, checkpoint, "limits.max_text_chars=1000", "limits.max_texts=64") as client:
        body = json.dumps({"text": ["\U0001f600" * 1000] * 64, "prefix": ["\U0001f600" * 1000] * 64,
                           "beam_size": 1}).encode()
        assert len(body) > 12 * 1000 * 64 + 64 * 1024  # over the limit before prefixes
        answer = client.post("/translate", content=body, headers={"content-type": "application/json"})
    assert answer.status_code == 200, answer.text


def test_malformed_json_is_a_json_error(client):
    answer = client.post("/translate", content=b"{not json", headers={"content-type": "application/json"})
    assert answer.status_code == 422 and answer.json()["error"] == "invalid_request"
    latin1 = '{"text": "Ein Hund läuft."}'.encode("latin-1")  # not UTF-8
    answer = client.post("/translate", content=latin1, headers={"content-type": "application/json"})
    assert answer.status_code == 422 and answer.json() == {"error": "invalid_request",
                                                           "detail": "the body is not UTF-8 encoded JSON"}


def test_health_model_docs_and_unknown_paths(client, checkpoint):
    assert client.get("/health").json() == {"status": "ok"}
    info = client.get("/model").json()
    assert info["checkpoint"] == "best.pt" and info["direction"] == "de-en"
    assert info["attention"] == "additive" and info["bidirectional_encoder"] is True
    assert info["parameters"] == sum(p.numel() for p in Translator.load(checkpoint, "cpu").model.parameters())
    plain = {"test_set": "test_2016_flickr", "beam_size": 5, "length_penalty": 1.0, "coverage_penalty": 0.0,
             "no_repeat_ngram_size": 0}
    assert info["bleu"] == [  # sorted by file name; each report says how it decoded
        {**plain, "coverage_penalty": 0.2, "no_repeat_ngram_size": 3, "bleu": 12.75, "signature": "nrefs:1"},
        {**plain, "bleu": 12.5, "signature": "nrefs:1|case:mixed|tok:13a"},
        {**plain, "length_penalty": 1.5, "bleu": 13.0, "signature": "nrefs:1"}]
    assert info["limits"]["max_beam_size"] == 4 and info["default_beam_size"] == 2
    assert client.get("/docs").status_code == 200
    assert "/translate" in client.get("/openapi.json").json()["paths"]
    missing = client.get("/static/..%2f..%2fapp.py")
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"


def test_the_page_and_its_assets_come_from_the_server(client):
    page = client.get("/")
    assert page.status_code == 200 and "default-src 'self'" in page.headers["content-security-policy"]
    assert 'src="/static/app.js"' in page.text and 'href="/static/style.css"' in page.text
    assert "http://" not in page.text and "https://" not in page.text
    for name, kind in (("app.js", "javascript"), ("style.css", "css")):
        asset = client.get(f"/static/{name}")
        assert asset.status_code == 200 and kind in asset.headers["content-type"]
        assert "http://" not in asset.text and "https://" not in asset.text


def test_concurrent_requests_share_a_batch_and_translate_as_alone(translator, checkpoint):
    """Twelve one-sentence requests sent at once: fewer model calls than requests, same translations."""
    alone = [translator.translate([s], beam_size=3, return_attention=True)[0][0] for s in SOURCES]
    with make_client(translator, checkpoint, "batching.window_ms=200", "batching.max_sentences=64") as c:
        app = c.app

        async def send_all():
            import httpx

            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
                return await asyncio.gather(*(http.post("/translate", json={
                    "text": s, "beam_size": 3, "return_attention": True}) for s in SOURCES))

        answers = c.portal.call(send_all)
    for answer, expected in zip(answers, alone, strict=True):
        [[best]] = answer.json()["translations"]
        assert best["text"] == expected.text and best["tgt_pieces"] == expected.tgt_pieces
        assert best["score"] == pytest.approx(expected.score, abs=1e-4)
        torch.testing.assert_close(torch.tensor(best["attention"], dtype=torch.float64), expected.attention.double(),
                                   atol=1e-4, rtol=0)
    assert max(a.json()["batch_sentences"] for a in answers) > 1


def run_batcher(jobs, **options):
    """Runs a Batcher over a recording fake model; returns the calls and the results.

    The event loop runs in a thread of its own, so that a batcher stuck without yielding (a request
    it never takes spins its loop) fails the test in 30 s instead of hanging the suite."""
    calls = []

    def fake_translate(texts, beam_size, nbest, attention, prefixes):
        assert len(prefixes) == len(texts)
        calls.append((list(texts), beam_size))
        if "boom" in texts:
            raise ValueError("boom")
        return [[Translation(text.upper(), 0.0, [], [], None)] for text in texts]

    async def main():
        batcher = Batcher(fake_translate, **options)
        await batcher.start()
        try:
            return await asyncio.gather(*(batcher.submit(t, b, 1, False) for t, b in jobs),
                                        return_exceptions=True)
        finally:
            await batcher.stop()

    outcome = {}

    def run_loop():
        try:
            outcome["results"] = asyncio.run(main())
        except BaseException as exc:  # re-raised in the test's thread
            outcome["error"] = exc

    worker = threading.Thread(target=run_loop, daemon=True)  # a stuck one ends with the test process
    worker.start()
    worker.join(timeout=30)
    assert not worker.is_alive(), "the batcher left a request unanswered for 30 s"
    if "error" in outcome:
        raise outcome["error"]
    return calls, outcome["results"]


def test_the_batcher_groups_by_beam_size_and_caps_batches():
    jobs = [(["a"], 1), (["b", "c"], 2), (["d"], 1), (["e"], 2), (["f", "g", "h"], 1)]
    calls, results = run_batcher(jobs, window_s=0.05, max_sentences=3, max_pending=100)
    assert calls == [(["a", "d"], 1), (["b", "c", "e"], 2), (["f", "g", "h"], 1)]
    texts = [[[h.text for h in nbest_list] for nbest_list in r.translations] for r in results]
    assert texts == [[["A"]], [["B"], ["C"]], [["D"]], [["E"]], [["F"], ["G"], ["H"]]]
    assert [r.batch_sentences for r in results] == [2, 3, 2, 3, 3]


def test_the_batcher_runs_one_request_per_call_when_batching_is_off():
    calls, _ = run_batcher([(["a"], 1), (["b"], 1), (["c", "d"], 1)], window_s=0, max_sentences=1,
                           max_pending=100)
    assert calls == [(["a"], 1), (["b"], 1), (["c", "d"], 1)]


def test_a_failing_batch_fails_its_requests_and_the_batcher_goes_on():
    calls, results = run_batcher([(["boom"], 1), (["a"], 2)], window_s=0.01, max_sentences=8, max_pending=100)
    assert isinstance(results[0], ValueError) and results[1].translations[0][0].text == "A"


def test_the_batcher_refuses_work_beyond_its_queue():
    _, results = run_batcher([(["a"] * 3, 1), (["b"] * 3, 1)], window_s=0.05, max_sentences=8, max_pending=4)
    assert not isinstance(results[0], Exception) and isinstance(results[1], Overloaded)


def test_the_batcher_queues_exactly_max_pending_sentences():
    _, results = run_batcher([(["a"] * 3, 1), (["b"], 1), (["c"], 1)], window_s=0.05, max_sentences=8, max_pending=4)
    assert [type(r).__name__ for r in results] == ["BatchResult", "BatchResult", "Overloaded"]


def test_a_shared_batch_gives_attention_to_the_requests_that_ask_for_it_and_only_to_them():
    calls = []

    def fake_translate(texts, beam_size, nbest, attention, prefixes):
        calls.append(list(texts))
        return [[Translation(text.upper(), 0.0, ["x", "</s>"], ["X", "</s>"],
                             torch.ones(2, 2) if attention else None)] for text in texts]

    async def main():
        batcher = Batcher(fake_translate, window_s=0.05, max_sentences=8, max_pending=100)
        await batcher.start()
        try:
            return await asyncio.gather(batcher.submit(["a"], 1, 1, False), batcher.submit(["b"], 1, 1, True),
                                        batcher.submit(["c"], 1, 1, False))
        finally:
            await batcher.stop()

    results = asyncio.run(main())
    assert calls == [["a", "b", "c"]]  # one model call for the three
    [[plain_a]], [[asked]], [[plain_c]] = (r.translations for r in results)
    assert asked.text == "B" and torch.equal(asked.attention, torch.ones(2, 2))
    assert plain_a.attention is None and plain_c.attention is None


def test_a_request_whose_client_went_away_frees_its_place_in_the_queue():
    calls = []

    def fake_translate(texts, beam_size, nbest, attention, prefixes):
        calls.append(list(texts))
        return [[Translation(text.upper(), 0.0, [], [], None)] for text in texts]

    async def main():
        batcher = Batcher(fake_translate, window_s=0.05, max_sentences=8, max_pending=4)
        await batcher.start()
        try:
            gone = asyncio.create_task(batcher.submit(["a"] * 3, 1, 1, False))
            await asyncio.sleep(0.01)  # queued, waiting for others to join it
            gone.cancel()
            for _ in range(100):  # its place is freed once the batcher has looked at the queue again
                await asyncio.sleep(0.05)
                with contextlib.suppress(Overloaded):
                    return await asyncio.wait_for(batcher.submit(["b"] * 3, 1, 1, False), 5)
            raise AssertionError("the abandoned request still fills the queue")
        finally:
            await batcher.stop()

    # In a thread, so that a batcher stuck on the abandoned request fails the test instead of hanging it.
    results = []
    worker = threading.Thread(target=lambda: results.append(asyncio.run(main())), daemon=True)
    worker.start()
    worker.join(timeout=30)
    assert results, "the batcher never answered the request that came after the abandoned one"
    assert [nbest[0].text for nbest in results[0].translations] == ["B"] * 3
    assert calls == [["b"] * 3]  # the abandoned request was never translated


def test_a_request_that_runs_out_of_memory_gets_a_json_error_and_the_server_goes_on(translator, checkpoint,
                                                                                     monkeypatch):
    """A beam the operator allowed (limits.max_beam_size) may still not fit the device: that request gets
    503 out_of_memory naming what to lower (simulated: no real 50 GB allocation), not 500, and the next
    request is served."""
    real_step = type(translator.model).decode_step

    def decode_step(model, prev_tokens, state):
        if prev_tokens.size(0) > 4:  # more than one sentence x beam 4: "too large"
            raise RuntimeError("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate "
                               "memory: you tried to allocate 51200000000 bytes. Error code 12")
        return real_step(model, prev_tokens, state)

    monkeypatch.setattr(type(translator.model), "decode_step", decode_step)
    with make_client(translator, checkpoint, "limits.max_beam_size=50") as client:
        answer = client.post("/translate", json={"text": SOURCES[0], "beam_size": 50})
        assert answer.status_code == 503, answer.text
        assert answer.json()["error"] == "out_of_memory"
        assert answer.json()["detail"].startswith("host out of memory in beam search (a batch of 1 sentence x ")
        assert answer.json()["detail"].endswith("; lower beam_size (now 50)")
        answer = client.post("/translate", json={"text": SOURCES[0], "beam_size": 4})
        assert answer.status_code == 200, answer.text
        assert answer.json()["translations"][0][0]["text"] == "A dog runs across the meadow."


def test_more_threads_than_usable_cores_are_warned_about_before_serving(checkpoint, monkeypatch, capsys):
    import uvicorn

    import nmt.cli.serve as cli_serve
    from nmt.training import runtime

    served = []
    monkeypatch.setattr(runtime, "usable_cores", lambda: 2)

    def serve(server, sockets):
        served.append(sockets)
        server.started = True

    monkeypatch.setattr(uvicorn.Server, "run", serve)
    cli_serve.run(serve_config(checkpoint, "num_threads=64", "port=0", "device=cpu"))
    assert len(served) == 1
    served[0][0].close()
    assert ("num_threads=64 is more than the 2 CPU core(s) this process may use: the extra threads only slow it "
            "down; set num_threads=2 or null") in capsys.readouterr().err
