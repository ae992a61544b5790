"""The HTTP server: REST API with micro-batching, and a web page that shows attention.

    POST /translate   {"text": "..."} or {"texts": [...]}, optional beam, alpha, nbest
    POST /attention   {"text": "..."} -> tokens and the attention matrix (per layer/head too)
    POST /explain     {"text": "...", "masked": [...], "zero_heads": [[l, h]]} -> the numbers
                      of attention's five steps at every output word (the Explain view)
    POST /timeline    {"text": "..."} -> its attention under every checkpoint the run kept
    POST /study       {"text": "..."} -> explained under every run (serving a study folder)
    GET  /health, GET /info, GET /docs (OpenAPI, served offline), GET / (the page)

Every limit (body size, characters per text, texts per request, beam size, and the
decoding work a request may cause) is checked before any model work; each request
is validated and tokenised on its own before it joins a batch, so one bad text
never fails the others. Every error is JSON ``{"error", "field"}``: 4xx when the
request is at fault, 503 with ``Retry-After`` when the server is too busy or the
request ran out of time — and then its decoding stops.
"""


import asyncio
import logging
import math
import re
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi_offline import FastAPIOffline
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictFloat, StrictStr

from ..checkpoint import RunDir, study_runs
from ..ct2engine import load_translator
from ..errors import UserError
from ..explain import explain, explain_runs, timeline, to_json
from ..translator import Engine
from .batcher import MicroBatcher
from .limits import BodyLimit, Limits

__all__ = ["Limits", "create_app", "serve"]
STATIC = Path(__file__).parent / "static"
# The schema's and the server's rule for a real text: a character that is whitespace for
# neither JSON Schema (ECMA \s) nor Python (str.isspace adds \x1c-\x1f and \x85).
NOT_BLANK = r"[^\s\x1c-\x1f\x85]"


class HTTPError(Exception):
    def __init__(self, status: int, field: str, message: str, retry_after: float | None = None):
        self.status, self.field, self.message = status, field, message
        self.retry_after = retry_after


def _error(status: int, field: str, message: str, retry_after: float | None = None
           ) -> JSONResponse:
    headers = {"Retry-After": str(max(1, math.ceil(retry_after)))} if retry_after else None
    return JSONResponse({"error": message, "field": field}, status_code=status, headers=headers)


def _json_integer(value: Any) -> Any:
    """JSON Schema's integer: 3 and 3.0, never true or "3"."""
    if isinstance(value, bool) or isinstance(value, str):
        raise ValueError("must be an integer")
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


Integer = Annotated[int, BeforeValidator(_json_integer)]
Position = Annotated[int, Field(ge=0), BeforeValidator(_json_integer)]     # 0, 1, 2, ...


def _request_models(limits: Limits) -> tuple[type[BaseModel], type[BaseModel]]:
    """The request bodies, with the server's limits written into the schema."""
    text_schema = {"maxLength": limits.max_chars}

    class TranslateRequest(BaseModel):
        model_config = ConfigDict(extra="forbid", json_schema_extra={
            "oneOf": [{"required": ["text"]}, {"required": ["texts"]}]})
        text: StrictStr = Field(None, description="one text (or use texts)",
                                json_schema_extra=text_schema)
        texts: list[StrictStr] = Field(None, description="several texts",
                                       json_schema_extra={"maxItems": limits.max_texts,
                                                          "items": {"type": "string",
                                                                    **text_schema}})
        beam: Integer = Field(None, ge=1, le=limits.max_beam, description="1 = greedy")
        alpha: StrictFloat = Field(None, ge=0, le=5, description="GNMT length penalty")
        nbest: Integer = Field(1, ge=1, le=limits.max_beam, description="translations per "
                                 "text; must not exceed the beam (422 otherwise)")

    class AttentionRequest(BaseModel):
        model_config = ConfigDict(extra="forbid")
        text: StrictStr = Field(..., description="the sentence to translate and show",
                                pattern=NOT_BLANK, json_schema_extra=text_schema)
        beam: Integer = Field(1, ge=1, le=limits.max_beam, description="beam size used to "
                                "find the translation")

    class ExplainRequest(BaseModel):
        model_config = ConfigDict(extra="forbid")
        text: StrictStr = Field(..., description="the sentence to translate (greedy) and "
                                "explain", pattern=NOT_BLANK, json_schema_extra=text_schema)
        masked: list[Position] = Field(
            [], max_length=limits.max_chars, description="source positions (from 0, </s> "
            "included) taken out of the decoder's attention before decoding; 422 for a "
            "position past the sentence")
        zero_heads: list[Annotated[list[Position], Field(min_length=2, max_length=2)]] = Field(
            [], max_length=256, description="[layer, head] pairs (from 0): Transformer "
            "cross-attention heads silenced before decoding; 422 for one the model lacks")
        top_k: Integer = Field(5, ge=1, le=20, description="next words shown per step")

    class SentenceRequest(BaseModel):
        model_config = ConfigDict(extra="forbid")
        text: StrictStr = Field(..., description="the sentence to translate (greedy) and "
                                "show", pattern=NOT_BLANK, json_schema_extra=text_schema)

    return TranslateRequest, AttentionRequest, ExplainRequest, SentenceRequest


def _check_texts(texts: list[str], limits: Limits) -> None:
    if len(texts) > limits.max_texts:
        raise HTTPError(413, "texts", f"{len(texts)} texts; at most {limits.max_texts} "
                                      "per request")
    for i, t in enumerate(texts):
        field = f"texts[{i}]" if len(texts) > 1 else "text"
        if len(t) > limits.max_chars:
            raise HTTPError(413, field, f"{len(t)} characters; at most {limits.max_chars}")
        try:
            t.encode("utf-8")
        except UnicodeEncodeError as e:
            raise HTTPError(422, field, f"character {e.start} is a lone surrogate, not "
                                        "Unicode text; send valid UTF-16 pairs") from None


def _work(translator: Engine, texts: list[str], beam: int, limits: Limits) -> int:
    """Source tokens x beam: what decoding the request costs; over the limit is 413."""
    try:
        tokens = sum(len(translator.encode_source(t)) for t in texts if t.strip())
    except Exception as e:  # a text the tokenizer cannot read: this request's fault only
        raise HTTPError(422, "text", f"cannot be tokenised: {e}") from None
    work = tokens * beam
    if work > limits.max_work:
        raise HTTPError(413, "texts" if len(texts) > 1 else "text",
                        f"{tokens} source tokens x beam {beam} = {work}; at most "
                        f"{limits.max_work} per request (send less text or a smaller beam)")
    return work


def _info(translator: Engine, run_dir, limits: Limits, max_batch: int,
          max_wait_ms: float) -> dict[str, Any]:
    cfg = translator.cfg
    info = {"run_dir": str(run_dir), "architecture": cfg.model.preset or cfg.model.arch,
            "arch": cfg.model.arch, "has_attention": translator.has_attention,
            "source_language": cfg.data.src, "target_language": cfg.data.tgt,
            "parameters": translator.num_parameters(),
            "engine": translator.engine, "explain": translator.engine == "attnmt",
            "decoding": {"beam": cfg.decode.beam, "alpha": translator.default_alpha},
            "limits": vars(limits), "micro_batch": {"max_batch": max_batch,
                                                    "max_wait_ms": max_wait_ms}}
    if run_dir:
        best = RunDir(run_dir).best() or RunDir(run_dir).latest() or {}
        info["checkpoint_step"] = best.get("step")
        info["kept_steps"] = RunDir(run_dir).kept_steps()
    return info


def _error_handlers(app) -> None:
    @app.exception_handler(HTTPError)
    async def http_error(request: Request, exc: HTTPError):
        return _error(exc.status, exc.field, exc.message, exc.retry_after)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        loc = [str(x) for x in first.get("loc", []) if x != "body"]
        field = ".".join(loc) or "body"
        return _error(422, field, f"{field}: {first.get('msg', 'invalid request')}")

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception):
        return _error(500, "server", f"internal error: {type(exc).__name__}")


def _admit(req, translator: Engine, batcher: MicroBatcher, limits: Limits
           ) -> tuple[list[str], int, int]:
    """Every check of a translate request before it may queue: the texts, the beam, the
    work it asks for, and whether the queue could finish it in time (else 503)."""
    if (req.text is None) == (req.texts is None):
        raise HTTPError(422, "text", "give exactly one of text or texts")
    texts = [req.text] if req.text is not None else req.texts
    beam = req.beam or translator.cfg.decode.beam
    if req.nbest > beam or (req.nbest > 1 and beam == 1):
        raise HTTPError(422, "nbest", f"nbest {req.nbest} needs beam >= {req.nbest}")
    _check_texts(texts, limits)
    work = _work(translator, texts, beam, limits)
    wait = batcher.expected_wait(work)
    if wait > limits.timeout_s:
        raise HTTPError(503, "server", f"busy: this request would wait about {wait:.0f} s; "
                        "try again later", retry_after=batcher.expected_wait())
    return texts, beam, work


async def _run(coro, limits: Limits, what: str):
    """Await model work within the request's time; its errors become JSON errors."""
    try:
        return await asyncio.wait_for(coro, limits.timeout_s)
    except asyncio.TimeoutError:
        raise HTTPError(503, "text", f"{what} took longer than {limits.timeout_s} s and was "
                                     "stopped; try again or send less text",
                        retry_after=limits.timeout_s) from None
    except UserError as e:
        raise HTTPError(getattr(e, "status", 422), getattr(e, "field", "text"),
                        str(e).split(": ", 1)[-1]) from None
    except Exception as e:        # logged with its traceback; the client gets one JSON line
        logging.getLogger("attnmt.serve").exception("%s failed", what)
        raise HTTPError(500, "server", f"internal error: {type(e).__name__}") from None


def _base_app(batcher: MicroBatcher, limits: Limits):
    """The FastAPI app with offline docs, the body limit and JSON error handlers."""

    @asynccontextmanager
    async def lifespan(app):
        batcher.start()
        yield
        await batcher.stop()

    app = FastAPIOffline(title="attnmt", version="0.1.0", lifespan=lifespan, redoc_url=None,
                         description="Translate, and see where the model looked. Limits: "
                         f"{limits.max_chars} characters per text, {limits.max_texts} texts, "
                         f"beam {limits.max_beam}, {limits.max_work} source tokens x beam "
                         f"per request, {limits.timeout_s} s.")
    app.add_middleware(BodyLimit, max_bytes=limits.max_body_bytes)
    app.state.batcher = batcher
    _error_handlers(app)
    return app


def create_app(translator: Engine, run_dir: str | Path = "", max_batch: int = 32,
               max_wait_ms: float = 10.0, limits: Limits | None = None,
               study: dict[str, Engine] | None = None):
    """The app serving ``translator`` (from ``run_dir``); with ``study`` (every run of a
    study folder by name, ``translator`` among them) ``POST /study`` explains a sentence
    under all of them."""
    limits = limits or Limits()
    batcher = MicroBatcher(translator, max_batch, max_wait_ms)
    TranslateRequest, AttentionRequest, ExplainRequest, SentenceRequest = \
        _request_models(limits)
    app = _base_app(batcher, limits)
    info = _info(translator, run_dir, limits, max_batch, max_wait_ms)
    info["study"] = list(study or {})

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok"}

    @app.get("/info")
    async def get_info() -> dict:
        return info

    @app.post("/translate")
    async def translate(req: TranslateRequest) -> dict:
        texts, beam, work = _admit(req, translator, batcher, limits)
        alpha = translator.default_alpha if req.alpha is None else float(req.alpha)
        start = time.perf_counter()
        results = await _run(batcher.submit(texts, beam, alpha, req.nbest, work=work,
                                            deadline=time.monotonic() + limits.timeout_s),
                             limits, "translation")
        items = [{"text": hyps[0].text, "score": hyps[0].score,
                  **({"nbest": [{"text": h.text, "score": h.score} for h in hyps]}
                     if req.nbest > 1 else {})} for hyps in results]
        return {"translations": items, "beam": beam, "alpha": alpha,
                "time_ms": round(1000 * (time.perf_counter() - start), 2)}

    @app.post("/attention")
    async def attention(req: AttentionRequest) -> dict:
        _check_texts([req.text], limits)
        if not re.search(NOT_BLANK, req.text):
            raise HTTPError(422, "text", "text is empty")
        _work(translator, [req.text], req.beam, limits)
        deadline = time.monotonic() + limits.timeout_s
        return await _run(batcher.run_in_model_thread(
            translator.attention, req.text, req.beam, lambda: time.monotonic() > deadline),
            limits, "attention")

    @app.post("/explain")
    async def explain_sentence(req: ExplainRequest) -> dict:
        """Attention's five steps at every output word of the greedy translation, with the
        model's own numbers (see ``attnmt.explain``); 422 names the field at fault."""
        _check_texts([req.text], limits)
        _work(translator, [req.text], 1, limits)
        return await _run(batcher.run_in_model_thread(
            _explained, translator, req.text, req.top_k, req.masked,
            [tuple(x) for x in req.zero_heads]), limits, "explanation")

    missing = {404: {"description": "what the served run or folder does not have (kept "
                                    "checkpoints, a study): {error, field}"}}

    @app.post("/timeline", responses=missing)
    async def training_timeline(req: SentenceRequest) -> dict:
        """The attention of the sentence's greedy translation under every checkpoint the
        run kept (``train.keep_every``); 422 when it kept none."""
        _check_texts([req.text], limits)
        _work(translator, [req.text], 1, limits)
        if not run_dir or translator.engine != "attnmt":
            raise HTTPError(404, "run", "the timeline needs a run directory served with the "
                                        "attnmt engine")
        return await _run(batcher.run_in_model_thread(
            lambda: to_json(timeline(run_dir, req.text))), limits, "timeline")

    @app.post("/study", responses=missing)
    async def side_by_side(req: SentenceRequest) -> dict:
        """The sentence explained under every run of the served study, side by side."""
        _check_texts([req.text], limits)
        _work(translator, [req.text], 1, limits)
        if not study:
            raise HTTPError(404, "run", "this server serves one run; start `attnmt serve` on "
                                        "a study folder (the output of `attnmt compare`)")
        return await _run(batcher.run_in_model_thread(
            lambda: to_json(explain_runs(study, req.text))), limits, "study")

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    @app.get("/static/{name}", include_in_schema=False)
    async def static(name: str) -> FileResponse:
        if name not in ("explain.js", "explain.css"):
            raise HTTPError(404, "path", f"no file {name!r}")
        return FileResponse(STATIC / name)

    return app


def _explained(translator: Engine, text: str, top_k: int, masked: list[int],
               zero_heads: list[tuple[int, int]]) -> dict:
    return to_json(explain(translator, text, top_k=top_k, masked=masked,
                           zero_heads=zero_heads))


class _HeaderTimeout:
    """uvicorn's HTTP protocol with a deadline for a request's headers: a connection that
    opens and never finishes them is closed (uvicorn itself only times out idle
    keep-alive connections)."""

    seconds = 10.0

    @classmethod
    def protocol(cls):
        from uvicorn.protocols.http.h11_impl import H11Protocol

        class Protocol(H11Protocol):
            def connection_made(self, transport):
                super().connection_made(transport)
                self._header_timer = self.loop.call_later(cls.seconds, self._header_timeout)

            def data_received(self, data: bytes) -> None:
                super().data_received(data)
                if self._header_timer and self.cycle and not self.cycle.response_complete:
                    self._header_timer.cancel()          # headers complete: a request runs
                    self._header_timer = None

            def on_response_complete(self) -> None:
                super().on_response_complete()
                if self._header_timer is None and not self.transport.is_closing():
                    self._header_timer = self.loop.call_later(cls.seconds,
                                                              self._header_timeout)

            def _header_timeout(self) -> None:
                self._header_timer = None
                if not self.transport.is_closing():
                    self.transport.close()

            def connection_lost(self, exc) -> None:
                if self._header_timer:
                    self._header_timer.cancel()
                super().connection_lost(exc)

        return Protocol


def serve(run_dir: str, host: str = "127.0.0.1", port: int = 8000, max_batch: int = 32,
          max_wait_ms: float = 10.0, limits: Limits | None = None, device: str = "cpu",
          engine: str = "attnmt") -> None:
    """Load a run directory (or, with ``engine="ctranslate2"``, an exported CTranslate2
    folder, or a study folder: every run, the first one translating) and serve it with
    uvicorn until interrupted (idle keep-alive connections close after 5 s, unfinished
    headers after 10 s; 256 connections at most)."""
    import uvicorn

    runs = study_runs(run_dir)
    study = {name: load_translator(path, engine, device=device) for name, path in runs.items()}
    if study:                      # a study folder: /translate serves its first run
        run_dir = str(next(iter(runs.values())))
    translator = study[next(iter(study))] if study else load_translator(run_dir, engine,
                                                                           device=device)
    app = create_app(translator, run_dir, max_batch, max_wait_ms, limits, study=study or None)
    uvicorn.run(app, host=host, port=port, log_level="info", http=_HeaderTimeout.protocol(),
                timeout_keep_alive=5, limit_concurrency=256)
