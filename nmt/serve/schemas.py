"""The JSON shapes of the HTTP API; FastAPI validates requests and writes the OpenAPI docs from them."""

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field


class TranslateRequest(BaseModel):
    # Unknown fields are an error, so a request cannot think it chose a checkpoint or a device; strict,
    # so "3" or true is not taken for a beam of 3 or 1, nor "yes" for true.
    model_config = ConfigDict(extra="forbid", strict=True)

    text: str | Annotated[list[str], Field(min_length=1)] = Field(
        description="One text, or a list of texts translated independently.",
        examples=["Ein Hund rennt über die Wiese.", ["Ein Mann.", "Zwei Frauen lachen."]])
    beam_size: int | None = Field(None, ge=1, description="Beam width; 1 is greedy. Default: the server's.")
    nbest: int = Field(1, ge=1, description="Hypotheses returned per text (at most beam_size).")
    return_attention: bool = Field(False, description="Include the attention matrices.")
    prefix: str | list[str] | None = Field(
        None, description="Text each translation must begin with, the search continuing from it (interactive "
                          "translation): one string for one text, or a list as long as `text` (\"\" for none).",
        examples=["A dog", ["A man", ""]])


class WordAttention(BaseModel):
    src_words: list[str]
    tgt_words: list[str]
    weights: list[list[float]] = Field(description="(len(tgt_words), len(src_words)); rows sum to 1")


class Hypothesis(BaseModel):
    text: str
    score: float = Field(description="log-probability divided by the length penalty")
    src_pieces: list[str] = Field(description="source subwords, ending with </s>")
    tgt_pieces: list[str] = Field(description="produced subwords, ending with </s>")
    attention: list[list[float]] | None = Field(
        None, description="(len(tgt_pieces), len(src_pieces)); row t is where target piece t looked")
    word_attention: WordAttention | None = Field(
        None, description="the same attention over words: source pieces summed, target pieces averaged")


class TranslateResponse(BaseModel):
    translations: list[list[Hypothesis]] = Field(description="one n-best list per input text, best first")
    beam_size: int
    batch_sentences: int = Field(description="sentences the server decoded together with this request's")


class BleuRecord(BaseModel):
    test_set: str
    beam_size: int
    length_penalty: float
    coverage_penalty: float = Field(0.0, description="0: none")
    no_repeat_ngram_size: int = Field(0, description="0: repeats allowed")
    bleu: float
    signature: str


class Limits(BaseModel):
    max_text_chars: int
    max_texts: int
    max_beam_size: int
    max_body_bytes: int


class ModelInfo(BaseModel):
    checkpoint: str = Field(description="file name of the checkpoint loaded at start")
    direction: str = Field(description="source-target languages, e.g. de-en")
    attention: str
    decoder_style: str
    rnn_type: str
    bidirectional_encoder: bool
    parameters: int
    vocab_size: dict[str, int]
    device: str
    default_beam_size: int
    bleu: list[BleuRecord] = Field(description="scores recorded by nmt-evaluate next to the checkpoint")
    limits: Limits


class ErrorResponse(BaseModel):
    error: str = Field(description="a stable code, e.g. text_too_long", examples=["text_too_long"])
    detail: str = Field(description="what was wrong, in words")
