"""The explainer's endpoints (the Explain view, the training timeline, a study side by
side) and the view's static files; see :mod:`attnmt.explain.numbers` for the numbers.
(No ``from __future__ import annotations``: FastAPI reads the request classes made
inside :func:`add_explain_routes` from the endpoints' real annotations.)"""

from pathlib import Path
from typing import Annotated

from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr

from ..explain.numbers import explain, explain_runs, timeline, to_json
from ..inference.translator import Engine
from .batcher import MicroBatcher
from .checks import NOT_BLANK, HTTPError, Integer, Position, check_texts, run_model, work_of
from .limits import Limits

STATIC = Path(__file__).parent / "static"
MISSING = {404: {"description": "what the served run or folder does not have (kept "
                                "checkpoints, a study): {error, field}"}}


def _request_models(limits: Limits) -> tuple[type[BaseModel], type[BaseModel]]:
    text_schema = {"maxLength": limits.max_chars}

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
        attribution: StrictBool = Field(False, description="add `attribution`: attention beside "
                                  "input x gradient, integrated gradients and masking for the "
                                  "same translation (the model without interventions), with "
                                  "their rank agreement")

    class SentenceRequest(BaseModel):
        model_config = ConfigDict(extra="forbid")
        text: StrictStr = Field(..., description="the sentence to translate (greedy) and "
                                "show", pattern=NOT_BLANK, json_schema_extra=text_schema)

    return ExplainRequest, SentenceRequest


def _explained(translator: Engine, text: str, top_k: int, masked: list[int],
               zero_heads: list[tuple[int, int]], attribution: bool) -> dict:
    return to_json(explain(translator, text, top_k=top_k, masked=masked,
                           zero_heads=zero_heads, attribution=attribution))


def add_explain_routes(app, *, translator: Engine, run_dir, study: dict[str, Engine] | None,
                       batcher: MicroBatcher, limits: Limits) -> None:
    """POST /explain, /timeline and /study, and GET /static/explain.{js,css}."""
    ExplainRequest, SentenceRequest = _request_models(limits)

    def admit(text: str) -> None:
        check_texts([text], limits)
        work_of(translator, [text], 1, limits)

    @app.post("/explain")
    async def explain_sentence(req: ExplainRequest) -> dict:
        """Attention's five steps at every output word of the greedy translation, with the
        model's own numbers (see ``attnmt.explain.numbers``); 422 names the field at fault."""
        admit(req.text)
        return await run_model(batcher.run_in_model_thread(
            _explained, translator, req.text, req.top_k, req.masked,
            [tuple(x) for x in req.zero_heads], req.attribution), limits, "explanation")

    async def numbers(text: str, missing: str | None, compute, what: str) -> dict:
        """Admit ``text``, answer 404 with ``missing`` when it says what is absent, else run
        ``compute`` in the model thread and return its numbers as JSON."""
        admit(text)
        if missing:
            raise HTTPError(404, "run", missing)
        return await run_model(batcher.run_in_model_thread(lambda: to_json(compute())),
                               limits, what)

    @app.post("/timeline", responses=MISSING)
    async def training_timeline(req: SentenceRequest) -> dict:
        """The attention of the sentence's greedy translation under every checkpoint the
        run kept (``train.keep_every``); 404 when it kept none."""
        absent = None if run_dir and translator.engine == "attnmt" else \
            "the timeline needs a run directory served with the attnmt engine"
        return await numbers(req.text, absent, lambda: timeline(run_dir, req.text), "timeline")

    @app.post("/study", responses=MISSING)
    async def side_by_side(req: SentenceRequest) -> dict:
        """The sentence explained under every run of the served study, side by side."""
        absent = None if study else ("this server serves one run; start `attnmt serve` on a "
                                     "study folder (the output of `attnmt compare`)")
        return await numbers(req.text, absent, lambda: explain_runs(study, req.text), "study")

    @app.get("/static/{name}", include_in_schema=False)
    async def static(name: str) -> FileResponse:
        if name not in ("explain.js", "explain.css"):
            raise HTTPError(404, "path", f"no file {name!r}")
        return FileResponse(STATIC / name)
