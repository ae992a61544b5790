"""The server for attention's two descendants: an encoder-only classifier and a
decoder-only language model.

    POST /classify    {"text": "..."} or {"texts": [...]} -> a label and the probabilities
                      of every label per text (micro-batched: concurrent requests share
                      one forward pass)
    POST /generate    {"prompt": "...", "max_new_tokens", "temperature", "top_k", "top_p",
                      "seed"} -> the prompt continued
    POST /attention   {"text": "..."} -> the self-attention over its tokens
    POST /explain     classifier: {"text", "attribution"} -> the attention from the pooled
                      position per layer and head, beside attributions for the label
    GET  /            classifier: a page that classifies and shows what the model looks at
    GET  /health, GET /info, GET /docs

The same limits, deadlines and errors as ``/translate`` (:mod:`.app`): every text is
checked before it queues, one bad text never fails the others, and a request that runs
out of time is stopped and answered 503.
"""


import re
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictStr

from ..explain.numbers import to_json
from ..rundir import RunDir
from .app import _add_status_routes, _base_app
from .batcher import Job, MicroBatcher
from .checks import NOT_BLANK, HTTPError, Integer, check_texts, run_model, work_of
from .explain_routes import STATIC
from .limits import Limits

MAX_NEW_TOKENS = 512


class ClassifyBatcher(MicroBatcher):
    """Micro-batching of classification: one forward pass over the gathered texts."""

    def _decode(self, jobs: list[Job]) -> list[dict]:
        texts = [t for job in jobs for t in job.texts]
        labels = self.translator.labels
        return [{"label": labels[int(p.argmax())], "probability": float(p.max()),
                 "probabilities": dict(zip(labels, map(float, p), strict=True))}
                for p in self.translator.probabilities(texts)]

    async def classify(self, texts: list[str], *, work: int, deadline: float) -> list[dict]:
        return await self.submit_job(Job(texts, ("classify",), work, deadline))


def _requests(limits: Limits) -> tuple[type[BaseModel], ...]:
    text_schema = {"maxLength": limits.max_chars}

    class ClassifyRequest(BaseModel):
        model_config = ConfigDict(extra="forbid", json_schema_extra={
            "oneOf": [{"required": ["text"]}, {"required": ["texts"]}]})
        text: StrictStr = Field(None, description="one text (or use texts)",
                                json_schema_extra=text_schema)
        texts: list[StrictStr] = Field(None, description="several texts",
                                       json_schema_extra={"maxItems": limits.max_texts,
                                                          "items": {"type": "string",
                                                                    **text_schema}})

    class GenerateRequest(BaseModel):
        model_config = ConfigDict(extra="forbid")
        prompt: StrictStr = Field("", description="the text to continue (\"\": from the "
                                  "start)", json_schema_extra=text_schema)
        max_new_tokens: Integer = Field(50, ge=1, le=MAX_NEW_TOKENS)
        temperature: StrictFloat | Integer = Field(1.0, ge=0, le=100,
                                                   description="0 = greedy")
        top_k: Integer = Field(0, ge=0, le=1_000_000, description="0 = off")
        top_p: StrictFloat | Integer = Field(1.0, gt=0, le=1)
        seed: Integer = Field(None, ge=0, le=2**32 - 1, description="for a repeatable sample")

    class AttentionRequest(BaseModel):
        model_config = ConfigDict(extra="forbid")
        text: StrictStr = Field(..., description="the text to read",
                                json_schema_extra=text_schema)

    class ExplainRequest(AttentionRequest):
        attribution: StrictBool = Field(False, description="also input x gradient, "
                                        "integrated gradients and masking for the label")

    return ClassifyRequest, GenerateRequest, AttentionRequest, ExplainRequest


def _texts(req, limits: Limits) -> list[str]:
    """A classify request's texts, checked: one kind of field, the limits, none blank."""
    if (req.text is None) == (req.texts is None):
        raise HTTPError(422, "text", "give exactly one of text or texts")
    texts = [req.text] if req.text is not None else req.texts
    check_texts(texts, limits)
    for i, text in enumerate(texts):
        if not re.search(NOT_BLANK, text):
            raise HTTPError(422, f"texts[{i}]" if req.texts is not None else "text",
                            "text is empty; send a sentence to classify")
    return texts


def _busy(batcher: MicroBatcher, work: int, limits: Limits) -> None:
    wait = batcher.expected_wait(work)
    if wait > limits.timeout_s:
        raise HTTPError(503, "server", f"busy: this request would wait about {wait:.0f} s; "
                        "try again later", retry_after=batcher.expected_wait())


def _info(predictor, run_dir, task: str, limits: Limits, max_batch: int, max_wait_ms: float
          ) -> dict[str, Any]:
    cfg = predictor.cfg
    info = {"run_dir": str(run_dir), "task": task,
            "architecture": cfg.model.preset or cfg.model.arch,
            "parameters": sum(p.numel() for p in predictor.model.parameters()),
            "limits": vars(limits), "micro_batch": {"max_batch": max_batch,
                                                    "max_wait_ms": max_wait_ms}}
    if task == "classify":
        info["labels"] = predictor.labels
    if run_dir:
        info["checkpoint_step"] = (RunDir(run_dir).best() or {}).get("step")
    return info


def create_task_app(predictor, run_dir: str | Path = "", task: str = "classify",
                    max_batch: int = 32, max_wait_ms: float = 10.0,
                    limits: Limits | None = None, executor: ThreadPoolExecutor | None = None):
    """The app serving a classifier (``task`` classify: ``/classify``) or a language model
    (``lm``: ``/generate``), with ``/attention``, ``/info`` and ``/health``; ``executor``:
    the model thread the predictor was loaded on (as in ``app.create_app``)."""
    limits = limits or Limits()
    batcher = ClassifyBatcher(predictor, max_batch, max_wait_ms, executor)
    ClassifyRequest, GenerateRequest, AttentionRequest, ExplainRequest = _requests(limits)
    app = _base_app(batcher, limits)
    _add_status_routes(app, lambda: _info(predictor, run_dir, task, limits, max_batch,
                                          max_wait_ms))
    if task == "classify":
        @app.post("/classify")
        async def classify(req: ClassifyRequest) -> dict:
            """Classify one text or several: ``{"labels": [{"label", "probability",
            "probabilities"}], "time_ms"}``, in the order of the texts."""
            texts = _texts(req, limits)
            work = work_of(predictor, texts, 1, limits)
            _busy(batcher, work, limits)
            start = time.perf_counter()
            labels = await run_model(batcher.classify(
                texts, work=work, deadline=time.monotonic() + limits.timeout_s), limits,
                "classification")
            return {"labels": labels, "time_ms": round(1000 * (time.perf_counter() - start), 2)}
    else:
        _add_generate(app, predictor, batcher, limits, GenerateRequest)

    @app.post("/attention")
    async def attention(req: AttentionRequest) -> dict:
        """The model's self-attention over the tokens of one text (mean and per layer and
        head)."""
        _check_one(req, predictor, limits)
        return await run_model(batcher.run_in_model_thread(predictor.attention, req.text),
                               limits, "attention")

    if task == "classify":
        _add_explain(app, predictor, batcher, limits, ExplainRequest)
    return app


def _check_one(req, predictor, limits: Limits) -> None:
    check_texts([req.text], limits)
    if not re.search(NOT_BLANK, req.text):
        raise HTTPError(422, "text", "text is empty")
    work_of(predictor, [req.text], 1, limits)


def _add_explain(app, predictor, batcher: MicroBatcher, limits: Limits, request) -> None:
    @app.post("/explain")
    async def explain(req: request) -> dict:  # type: ignore[valid-type]
        """What the classifier looks at in one text: ``label``, ``labels``,
        ``probabilities``, ``tokens``, ``attention`` from the pooled position (layers,
        heads, tokens) and, with ``attribution``, ``methods`` (per token) and their
        ``agreement``."""
        _check_one(req, predictor, limits)
        result = await run_model(batcher.run_in_model_thread(
            predictor.explain, req.text, req.attribution), limits, "explanation")
        return to_json(result)

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "classify.html")


def _add_generate(app, predictor, batcher: MicroBatcher, limits: Limits, request) -> None:
    @app.post("/generate")
    async def generate(req: request) -> dict:  # type: ignore[valid-type]
        """Continue ``prompt``: ``{"text", "new_tokens", "time_ms"}`` (``text`` includes the
        prompt); ``temperature`` 0 is greedy."""
        check_texts([req.prompt], limits)
        prompt_tokens = len(predictor.encode_source(req.prompt)) if req.prompt.strip() else 0
        if prompt_tokens + 1 >= predictor.model.max_positions:
            raise HTTPError(413, "prompt", f"{prompt_tokens} tokens; the model reads at most "
                            f"{predictor.model.max_positions - 2}")
        work = prompt_tokens + req.max_new_tokens
        if work > limits.max_work:
            raise HTTPError(413, "max_new_tokens", f"{prompt_tokens} prompt tokens + "
                            f"{req.max_new_tokens} new = {work}; at most {limits.max_work}")
        _busy(batcher, work, limits)
        deadline = time.monotonic() + limits.timeout_s
        start = time.perf_counter()
        text, new = await run_model(batcher.run_in_model_thread(
            lambda: predictor.continuation(
                req.prompt, req.max_new_tokens, float(req.temperature), req.top_k,
                float(req.top_p), req.seed, cancelled=lambda: time.monotonic() > deadline)),
            limits, "generation")
        return {"text": text, "new_tokens": new,
                "time_ms": round(1000 * (time.perf_counter() - start), 2)}


def task_openapi_schema(task: str, limits: Limits | None = None) -> dict:
    """The OpenAPI schema a classifier (``classify``) or language-model (``lm``) server
    publishes, built without a model (for the docs)."""
    return create_task_app(None, task=task, limits=limits).openapi()
