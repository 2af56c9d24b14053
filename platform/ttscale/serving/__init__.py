"""`ttscale serve`: the compute-optimal policy behind an OpenAI-compatible HTTP endpoint.

One request is one problem. It is answered with the `adaptive` strategy applying the policy file
(or with a fixed strategy the request names), searched in a batch with the other requests that
arrived meanwhile, through the same runner functions as a sweep's shards; the selected candidate
is the assistant's message, and a `ttscale` field says which strategy ran, the predicted
difficulty bin and the budget spent.

- `protocol`: the wire format (OpenAI's request and response, the `ttscale` extension, errors);
- `answering`: a request becomes a job of a cell; a batch of one cell's jobs becomes responses;
- `batching`: the queue and worker thread that batch concurrent requests by cell;
- `app`: the FastAPI routes; `server`: binding the port and running uvicorn.

This package sits above `ttscale.runner` (it reaches models and the search only through it) and
below the CLI (`cli/serve.py`); FastAPI and uvicorn are used nowhere else in ttscale.
"""
