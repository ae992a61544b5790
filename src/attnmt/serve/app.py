"""The HTTP server: REST API with micro-batching, and a web page that shows attention.

    POST /translate   {"text": "..."} or {"texts": [...]}, optional beam, alpha, nbest
    POST /attention   {"text": "..."} -> tokens and the attention matrix (per layer/head too)
    GET  /health, GET /info, GET /docs (OpenAPI), GET / (the page)

Every limit (characters per text, texts per request, beam size) is checked
before any model work; a bad request gets 413/422 with a JSON error naming the
field, a slow one 503, and the server keeps serving the others.
"""

from __future__ import annotations

import asyncio
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from pydantic import BaseModel, Field

from ..checkpoint import RunDir
from ..translator import Translator
from .batcher import MicroBatcher

STATIC = Path(__file__).parent / "static"


@dataclass
class Limits:
    max_chars: int = 1000
    max_texts: int = 64
    max_beam: int = 16
    timeout_s: float = 30.0


class TranslateRequest(BaseModel):
    text: str | None = Field(None, description="one text (or use texts)")
    texts: list[str] | None = Field(None, description="several texts")
    beam: int | None = Field(None, ge=1, description="beam size; 1 = greedy")
    alpha: float | None = Field(None, ge=0.0, le=5.0, description="GNMT length penalty")
    nbest: int = Field(1, ge=1, description="translations per text (<= beam)")


class AttentionRequest(BaseModel):
    text: str = Field(..., description="the sentence to translate and show")
    beam: int = Field(1, ge=1, description="beam size used to find the translation")


class HTTPError(Exception):
    def __init__(self, status: int, field: str, message: str):
        self.status, self.field, self.message = status, field, message


def _error(status: int, field: str, message: str) -> JSONResponse:
    return JSONResponse({"error": message, "field": field}, status_code=status)


def _check_texts(texts: list[str], limits: Limits) -> None:
    if len(texts) > limits.max_texts:
        raise HTTPError(413, "texts", f"{len(texts)} texts; at most {limits.max_texts} "
                                      "per request")
    for i, t in enumerate(texts):
        if len(t) > limits.max_chars:
            raise HTTPError(413, f"texts[{i}]" if len(texts) > 1 else "text",
                            f"{len(t)} characters; at most {limits.max_chars}")


def create_app(translator: Translator, run_dir: str | Path = "", max_batch: int = 32,
               max_wait_ms: float = 10.0, limits: Limits | None = None) -> FastAPI:
    limits = limits or Limits()
    batcher = MicroBatcher(translator, max_batch, max_wait_ms)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        batcher.start()
        yield
        await batcher.stop()

    app = FastAPI(title="attnmt", version="0.1.0", lifespan=lifespan,
                  description="Translate, and see where the model looked.")
    app.state.batcher = batcher
    cfg, model = translator.cfg, translator.model
    info = {"run_dir": str(run_dir), "architecture": cfg.model.preset or cfg.model.arch,
            "arch": cfg.model.arch, "has_attention": model.has_attention,
            "source_language": cfg.data.src, "target_language": cfg.data.tgt,
            "parameters": model.num_parameters(),
            "decoding": {"beam": cfg.decode.beam, "alpha": cfg.decode.alpha},
            "limits": vars(limits), "micro_batch": {"max_batch": max_batch,
                                                    "max_wait_ms": max_wait_ms}}
    if run_dir:
        best = RunDir(run_dir).best() or RunDir(run_dir).latest() or {}
        info["checkpoint_step"] = best.get("step")

    @app.exception_handler(HTTPError)
    async def http_error(request: Request, exc: HTTPError):
        return _error(exc.status, exc.field, exc.message)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        loc = [str(x) for x in first.get("loc", []) if x != "body"]
        field = ".".join(loc) or "body"
        return _error(422, field, f"{field}: {first.get('msg', 'invalid request')}")

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok"}

    @app.get("/info")
    async def get_info() -> dict:
        return info

    @app.post("/translate")
    async def translate(req: TranslateRequest) -> dict:
        if (req.text is None) == (req.texts is None):
            raise HTTPError(422, "text", "give exactly one of text or texts")
        texts = [req.text] if req.text is not None else req.texts
        _check_texts(texts, limits)
        beam = req.beam or cfg.decode.beam
        if beam > limits.max_beam:
            raise HTTPError(422, "beam", f"beam {beam} is over the limit of {limits.max_beam}")
        if req.nbest > max(beam, 1) or (req.nbest > 1 and beam == 1):
            raise HTTPError(422, "nbest", f"nbest {req.nbest} needs beam >= {req.nbest}")
        alpha = cfg.decode.alpha if req.alpha is None else req.alpha
        start = time.perf_counter()
        try:
            results = await asyncio.wait_for(batcher.submit(texts, beam, alpha, req.nbest),
                                             limits.timeout_s)
        except asyncio.TimeoutError:
            raise HTTPError(503, "text", f"translation took longer than {limits.timeout_s} s; "
                                         "try again or send less text") from None
        items = [{"text": hyps[0].text, "score": hyps[0].score,
                  **({"nbest": [{"text": h.text, "score": h.score} for h in hyps]}
                     if req.nbest > 1 else {})} for hyps in results]
        return {"translations": items, "beam": beam, "alpha": alpha,
                "time_ms": round(1000 * (time.perf_counter() - start), 2)}

    @app.post("/attention")
    async def attention(req: AttentionRequest) -> dict:
        if not model.has_attention:
            raise HTTPError(422, "model", "this model has no attention: a seq2seq model sees the "
                                          "source only through one fixed context vector")
        _check_texts([req.text], limits)
        if not req.text.strip():
            raise HTTPError(422, "text", "text is empty")
        if req.beam > limits.max_beam:
            raise HTTPError(422, "beam", f"beam {req.beam} is over the limit of "
                                         f"{limits.max_beam}")
        try:
            return await asyncio.wait_for(
                batcher.run_in_model_thread(translator.attention, req.text, req.beam),
                limits.timeout_s)
        except asyncio.TimeoutError:
            raise HTTPError(503, "text", f"took longer than {limits.timeout_s} s") from None

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    return app


def serve(run_dir: str, host: str = "127.0.0.1", port: int = 8000, max_batch: int = 32,
          max_wait_ms: float = 10.0, limits: Limits | None = None, device: str = "cpu") -> None:
    """Load a run directory and serve it with uvicorn until interrupted."""
    import uvicorn

    translator = Translator.from_run(run_dir, device=device)
    app = create_app(translator, run_dir, max_batch, max_wait_ms, limits)
    uvicorn.run(app, host=host, port=port, log_level="info")
