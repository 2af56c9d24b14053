"""The HTTP routes of `ttscale serve` (FastAPI): OpenAI's chat completions and model list.

- `POST /v1/chat/completions`: the body is parsed and checked (`protocol.parse_body`), turned
  into a job (`Answerer.job`) and queued for the batcher under its cell; the route awaits its
  future without blocking the event loop, so every concurrent request is queued while a search
  runs. The response is `protocol.ChatCompletion`.
- `GET /v1/models`: the served model, with the policy and limits the server applies.

Every error is OpenAI's shape, `{"error": {"message", "type", "param", "code"}}`, with a
one-line message: 400 for a bad request (404 for an unknown model or route, 405 for a wrong
method, 413 for a body over 1 MiB), 503 while shutting down, 500 when the search itself fails
(the message says why; a bug's traceback goes to the server's log).
"""

from __future__ import annotations

import asyncio
import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from ttscale.errors import TtscaleError
from ttscale.serving.answering import Answerer, Job
from ttscale.serving.batching import Batcher, BatcherClosed
from ttscale.serving.protocol import MAX_BODY_BYTES, ChatCompletion, RequestError, error_body, parse_body

logger = logging.getLogger(__name__)

_HTTP_CODES = {404: "not_found", 405: "method_not_allowed"}


def create_app(answerer: Answerer, batcher: Batcher[Job, ChatCompletion]) -> FastAPI:
    """The app answering through `answerer`, batched by `batcher` (started and closed by the caller)."""
    app = FastAPI(title="ttscale serve", summary="Test-time compute scaling behind OpenAI's chat completions API",
                  docs_url=None, redoc_url=None)  # fmt: skip

    @app.exception_handler(RequestError)
    async def _request_error(request: Request, err: RequestError) -> JSONResponse:
        return JSONResponse(error_body(str(err), type=err.type, code=err.code, param=err.param), status_code=err.status)

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, err: HTTPException) -> JSONResponse:
        message = f"{request.method} {request.url.path}: {err.detail}"
        code = _HTTP_CODES.get(err.status_code)
        kind = "invalid_request_error" if err.status_code < 500 else "server_error"
        return JSONResponse(error_body(message, type=kind, code=code), status_code=err.status_code, headers=getattr(err, "headers", None))

    @app.get("/v1/models")
    async def models() -> dict:
        """The served model and what the server applies to it."""
        return answerer.models_body()

    @app.post("/v1/chat/completions", response_model=ChatCompletion)
    async def chat_completions(request: Request) -> JSONResponse:
        """Answer one problem with the policy file (or the strategy the `ttscale` field names)."""
        chat, text = parse_body(await _read_body(request))
        job = answerer.job(chat, text)
        try:
            completion = await asyncio.wrap_future(batcher.submit(job.cell.cell_id, job))
        except BatcherClosed as err:
            raise RequestError(f"not answered: {err}", status=503, code="shutting_down") from None
        except TtscaleError as err:  # the search failed (an engine error), one line
            raise RequestError(f"the search failed: {err}", status=500, code="search_failed") from None
        except Exception as err:  # a bug: its traceback in the log, one line to the client
            logger.exception("request %s failed", job.id)
            raise RequestError(f"internal error ({type(err).__name__}); see the server's log", status=500, code="internal_error") from None
        logger.info("answered id=%s cell=%s strategy=%s n=%d batch=%d", job.id, job.cell.cell_id, job.cell.strategy.name,
                    job.cell.n, completion.ttscale.batch_size)  # fmt: skip
        return JSONResponse(completion.model_dump(mode="json"))

    return app


async def _read_body(request: Request) -> bytes:
    """The body, refused (413) as soon as it passes MAX_BODY_BYTES rather than read whole."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise RequestError(f"request body of {declared} bytes; at most {MAX_BODY_BYTES}", status=413, code="request_too_large")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise RequestError(f"request body over {MAX_BODY_BYTES} bytes", status=413, code="request_too_large")
        chunks.append(chunk)
    return b"".join(chunks)
