"""What every endpoint checks and how it fails: request limits, JSON integers, the rule
for a real text, and model work run within the request's time. Every failure is an
:class:`HTTPError`, answered as JSON ``{"error", "field"}``."""

from __future__ import annotations

import asyncio
import logging
import math
from typing import Annotated, Any

from fastapi.responses import JSONResponse
from pydantic import BeforeValidator, Field

from ..errors import UserError
from ..inference.translator import Engine
from .limits import Limits

# The schema's and the server's rule for a real text: a character that is whitespace for
# neither JSON Schema (ECMA \s) nor Python (str.isspace adds \x1c-\x1f and \x85).
NOT_BLANK = r"[^\s\x1c-\x1f\x85]"


class HTTPError(Exception):
    def __init__(self, status: int, field: str, message: str, retry_after: float | None = None):
        self.status, self.field, self.message = status, field, message
        self.retry_after = retry_after


def error_response(status: int, field: str, message: str, retry_after: float | None = None
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


def check_texts(texts: list[str], limits: Limits) -> None:
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


def work_of(translator: Engine, texts: list[str], beam: int, limits: Limits) -> int:
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


async def run_model(coro, limits: Limits, what: str):
    """Await model work within the request's time; its errors become JSON errors (a
    ``UserError`` may name its ``field`` and ``status``; else 422 on ``text``)."""
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
