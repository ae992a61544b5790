"""The HTTP server: REST API with micro-batching, and a web page that shows attention.

    POST /translate   {"text": "..."} or {"texts": [...]}, optional beam, alpha, nbest,
                      alignments, prefix or prefixes, constraints, no_repeat_ngram, coverage
    POST /attention   {"text": "..."} -> tokens and the attention matrix (per layer/head too)
    POST /explain     {"text": "...", "masked": [...], "zero_heads": [[l, h]]} -> the numbers
                      of attention's five steps at every output word (the Explain view)
    POST /timeline    {"text": "..."} -> its attention under every checkpoint the run kept
    POST /study       {"text": "..."} -> explained under every run (serving a study folder)
    GET  /health, GET /info, GET /docs (OpenAPI, served offline), GET / (the page)

A classifier or language-model run is served by :mod:`.task_app` instead (``/classify``,
``/generate``).

Every limit (body size, characters per text, texts per request, beam size, and the
decoding work a request may cause) is checked before any model work; each request
is validated and tokenised on its own before it joins a batch, so one bad text
never fails the others. Every error is JSON ``{"error", "field"}``: 4xx when the
request is at fault, 503 with ``Retry-After`` when the server is too busy or the
request ran out of time — and then its decoding stops.
"""


import re
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse
from fastapi_offline import FastAPIOffline
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictStr

from ..errors import UserError
from ..inference.ct2engine import load_translator
from ..inference.translator import Engine
from ..rundir import RunDir, study_runs
from .batcher import MicroBatcher, model_thread
from .checks import (
    NOT_BLANK,
    HTTPError,
    Integer,
    check_texts,
    error_response,
    run_model,
    work_of,
)
from .explain_routes import STATIC, add_explain_routes
from .limits import BodyLimit, HeaderTimeout, Limits

__all__ = ["Limits", "create_app", "openapi_schema", "serve"]


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
        alignments: StrictBool = Field(False, description="add each best translation's word "
                                       "alignment, Pharaoh i-j, argmax of the attention "
                                       "(attnmt engine, models with attention)")
        prefix: StrictStr = Field(None, description="the start of every translation: the "
                                  "search continues after it (or use prefixes)",
                                  json_schema_extra=text_schema)
        prefixes: list[StrictStr] = Field(None, description="one forced start per text, in "
                                          "order; \"\" for none (422 unless one per text)",
                                          json_schema_extra={"maxItems": limits.max_texts,
                                                             "items": {"type": "string",
                                                                       **text_schema}})
        constraints: list[list[StrictStr]] = Field(
            None, description="per text, in order, the phrases its translation must contain "
            "(lexically constrained beam search; beam 2 or more; 422 unless one list per "
            "text)", json_schema_extra={"maxItems": limits.max_texts, "items": {
                "type": "array", "maxItems": limits.max_constraints,
                "items": {"type": "string", **text_schema}}})
        no_repeat_ngram: Integer = Field(0, ge=0, le=16, description="forbid repeating any "
                                         "n-gram of this size (0: off)")
        coverage: StrictFloat = Field(0.0, ge=0, le=5, description="GNMT coverage penalty "
                                      "weight (beam search, models with attention; 0: off)")

    class AttentionRequest(BaseModel):
        model_config = ConfigDict(extra="forbid")
        text: StrictStr = Field(..., description="the sentence to translate and show",
                                pattern=NOT_BLANK, json_schema_extra=text_schema)
        beam: Integer = Field(1, ge=1, le=limits.max_beam, description="beam size used to "
                                "find the translation")

    return TranslateRequest, AttentionRequest


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
    async def httperror_response(request: Request, exc: HTTPError):
        return error_response(exc.status, exc.field, exc.message, exc.retry_after)

    @app.exception_handler(RequestValidationError)
    async def validationerror_response(request: Request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        loc = [str(x) for x in first.get("loc", []) if x != "body"]
        field = ".".join(loc) or "body"
        return error_response(422, field, f"{field}: {first.get('msg', 'invalid request')}")

    @app.exception_handler(Exception)
    async def internalerror_response(request: Request, exc: Exception):
        return error_response(500, "server", f"internal error: {type(exc).__name__}")


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
    check_texts(texts, limits)
    _check_forcing(req, texts, beam, limits)
    work = work_of(translator, texts, beam, limits)
    wait = batcher.expected_wait(work)
    if wait > limits.timeout_s:
        raise HTTPError(503, "server", f"busy: this request would wait about {wait:.0f} s; "
                        "try again later", retry_after=batcher.expected_wait())
    return texts, beam, work


def _check_forcing(req, texts: list[str], beam: int, limits: Limits) -> None:
    """What the schema cannot say about prefixes and constraints: one per text, one kind of
    prefix, constraints only for beam search, and no more phrases than the limit."""
    if req.prefix is not None and req.prefixes is not None:
        raise HTTPError(422, "prefixes", "give prefix (for every text) or prefixes (one "
                                         "per text), not both")
    for field in ("prefixes", "constraints"):
        given = getattr(req, field)
        if given is not None and len(given) != len(texts):
            raise HTTPError(422, field, f"{len(given)} {field} for {len(texts)} texts; give "
                                        "one per text (an empty one where there is none)")
    if req.constraints is not None:
        if beam == 1:
            raise HTTPError(422, "constraints", "constraints need beam search: use a beam "
                                                "of 2 or more")
        if max(map(len, req.constraints), default=0) > limits.max_constraints:
            raise HTTPError(413, "constraints", f"at most {limits.max_constraints} phrases "
                                                "per text")


def _forcing(req, texts: list[str]) -> dict:
    """The decoding controls a request asks for, as ``Translator.translate`` takes them."""
    prefixes = [req.prefix] * len(texts) if req.prefix is not None else req.prefixes
    return {"prefixes": prefixes, "constraints": req.constraints,
            "no_repeat_ngram": req.no_repeat_ngram, "coverage": float(req.coverage)}


def _items(results, nbest: int) -> list[dict]:
    """Each text's best translation and score (and its n-best list when asked)."""
    return [{"text": hyps[0].text, "score": hyps[0].score,
             **({"nbest": [{"text": h.text, "score": h.score} for h in hyps]}
                if nbest > 1 else {})} for hyps in results]


def _add_alignments(translator: Engine, texts: list[str], items: list[dict]) -> None:
    """Each item's ``alignment``: its text's word alignment with the best translation."""
    from ..data.pharaoh import to_pharaoh
    from ..inference.alignment import align

    if not getattr(translator, "has_attention", False) or translator.engine != "attnmt":
        error = UserError("alignments are read from the attention: they need a model with "
                          "attention served by the attnmt engine")
        error.field = "alignments"
        raise error
    links, _ = align(translator, texts, [item["text"] for item in items])
    for item, found in zip(items, links, strict=True):
        item["alignment"] = to_pharaoh(found)


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


def _add_status_routes(app, make_info) -> None:
    """``/health``, ``/stats``, and ``/info`` made by ``make_info`` on its first call."""
    info: dict[str, Any] = {}

    @app.get("/stats")
    async def stats() -> dict:
        """Micro-batching since the server started: ``batches`` collected, ``texts``
        answered, ``mean_batch`` (texts per batch) and ``model_seconds`` (time the model
        thread spent on them; against the wall clock, how busy the model was)."""
        return app.state.batcher.stats()

    @app.get("/health")
    async def health() -> dict:
        """``{"status": "ok"}`` while the server runs."""
        return {"status": "ok"}

    @app.get("/info")
    async def get_info() -> dict:
        """The served model (architecture, languages, parameters, engine, checkpoint step,
        kept checkpoints), its decoding defaults, the limits and the micro-batching."""
        if not info:
            info.update(make_info())
        return info


def create_app(translator: Engine, run_dir: str | Path = "", max_batch: int = 32,
               max_wait_ms: float = 10.0, limits: Limits | None = None,
               study: dict[str, Engine] | None = None, executor: ThreadPoolExecutor | None = None):
    """The app serving ``translator`` (from ``run_dir``); with ``study`` (every run of a
    study folder by name, ``translator`` among them) ``POST /study`` explains a sentence
    under all of them. ``executor``: the model thread the translator was loaded on
    (``batcher.model_thread``; a new one if not given)."""
    limits = limits or Limits()
    batcher = MicroBatcher(translator, max_batch, max_wait_ms, executor)
    TranslateRequest, AttentionRequest = _request_models(limits)
    app = _base_app(batcher, limits)
    _add_status_routes(app, lambda: {**_info(translator, run_dir, limits, max_batch,
                                             max_wait_ms), "study": list(study or {})})

    @app.post("/translate")
    async def translate(req: TranslateRequest) -> dict:
        """Translate one text or several: ``{"translations": [{"text", "score"[, "nbest"]}],
        "beam", "alpha", "time_ms"}``. Each text is checked on its own before it joins a
        micro-batch."""
        texts, beam, work = _admit(req, translator, batcher, limits)
        alpha = translator.default_alpha if req.alpha is None else float(req.alpha)
        start = time.perf_counter()
        results = await run_model(batcher.submit(texts, beam, alpha, req.nbest, work=work,
                                                 deadline=time.monotonic() + limits.timeout_s,
                                                 **_forcing(req, texts)), limits, "translation")
        items = _items(results, req.nbest)
        if req.alignments:
            await run_model(batcher.run_in_model_thread(_add_alignments, translator, texts,
                                                        items), limits, "alignment")
        return {"translations": items, "beam": beam, "alpha": alpha,
                "time_ms": round(1000 * (time.perf_counter() - start), 2)}

    @app.post("/attention")
    async def attention(req: AttentionRequest) -> dict:
        """Translate one text and return its tokens and the attention matrix (per layer and
        head for a Transformer); 422 for a model without attention."""
        check_texts([req.text], limits)
        if not re.search(NOT_BLANK, req.text):
            raise HTTPError(422, "text", "text is empty")
        work_of(translator, [req.text], req.beam, limits)
        deadline = time.monotonic() + limits.timeout_s
        return await run_model(batcher.run_in_model_thread(
            translator.attention, req.text, req.beam, lambda: time.monotonic() > deadline),
            limits, "attention")

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    add_explain_routes(app, translator=translator, run_dir=run_dir, study=study,
                       batcher=batcher, limits=limits)
    return app


def openapi_schema(limits: Limits | None = None) -> dict:
    """The REST API's OpenAPI schema, as a server with ``limits`` publishes it at
    ``/openapi.json``. The routes and request bodies do not depend on the model (a route
    that needs something the served run lacks answers 404 or 422), so none is loaded: the
    docs build it from here."""
    return create_app(None, limits=limits).openapi()  # type: ignore[arg-type]


def serve(run_dir: str, host: str = "127.0.0.1", port: int = 8000, max_batch: int = 32,
          max_wait_ms: float = 10.0, limits: Limits | None = None, device: str = "cpu",
          engine: str = "attnmt", threads: int = 0) -> None:
    """Load a run directory (or, with ``engine="ctranslate2"``, an exported CTranslate2
    folder, or a study folder: every run, the first one translating; a classifier or
    language-model run gets :mod:`.task_app`'s routes) and serve it with
    uvicorn until interrupted (idle keep-alive connections close after 5 s, unfinished
    headers after 10 s; 256 connections at most). The models are loaded on the thread that
    will run them (``batcher.model_thread``). ``threads`` is CTranslate2's
    ``intra_threads`` (0: its default); the CLI sets PyTorch's."""
    import uvicorn

    executor = model_thread()
    app = executor.submit(_app, run_dir, max_batch, max_wait_ms, limits, device, engine,
                          threads, executor).result()
    uvicorn.run(app, host=host, port=port, log_level="info", http=HeaderTimeout.protocol(),
                timeout_keep_alive=5, limit_concurrency=256)


def _app(run_dir: str, max_batch: int, max_wait_ms: float, limits: Limits | None,
         device: str, engine: str, threads: int, executor: ThreadPoolExecutor):
    """The app of ``run_dir``, its models loaded (on ``executor``'s thread, the caller)."""
    return (_task_app(run_dir, max_batch, max_wait_ms, limits, device, engine, executor)
            or _translation_app(run_dir, max_batch, max_wait_ms, limits, device, engine,
                                threads, executor))


def _task_app(run_dir: str, max_batch: int, max_wait_ms: float, limits: Limits | None,
              device: str, engine: str, executor: ThreadPoolExecutor | None = None):
    """The app of a classifier or language-model run; None for anything else."""
    path = Path(run_dir)
    if not (path / "config.yaml").is_file() or study_runs(run_dir):
        return None
    task = RunDir(path).load_config().data.task
    if task not in ("classify", "lm"):
        return None
    if engine != "attnmt" or device != "cpu":
        raise UserError(f"{run_dir} holds a {task} model: it is served by the attnmt engine "
                        "on the CPU (drop --engine and --device)")
    from ..api import load_predictor
    from .task_app import create_task_app

    return create_task_app(load_predictor(run_dir), run_dir, task, max_batch, max_wait_ms,
                           limits, executor)


def _translation_app(run_dir: str, max_batch: int, max_wait_ms: float, limits: Limits | None,
                     device: str, engine: str, threads: int = 0,
                     executor: ThreadPoolExecutor | None = None):
    runs = study_runs(run_dir)
    load = partial(load_translator, engine=engine, device=device, threads=threads)
    study = {name: load(path) for name, path in runs.items()}
    if study:                      # a study folder: /translate serves its first run
        run_dir = str(next(iter(runs.values())))
    translator = study[next(iter(study))] if study else load(run_dir)
    return create_app(translator, run_dir, max_batch, max_wait_ms, limits, study=study or None,
                      executor=executor)
