"""`POST /v1/models/NAME/generate` (`/v1/generate` with one model): a next-token
model continues a prompt, as `rnnc generate` does.

The body: `{"prompt": "..."}` (text through the model's vocabulary, else token ids
separated by spaces, or a list of ids), and optionally `max_tokens` (default 200, at
most the server's `max_tokens`), `temperature`, `top_k`, `top_p`, `seed` (the same seed
gives the same text as `rnnc generate --seed`) or `greedy: true`. Tokens come from the
decoder step graph beside the model (`rnnc.runtime_decode`), one step a token, each
chosen in a worker thread. With `Accept: text/event-stream` each new token is one
server-sent event as soon as it is chosen, `data: {"token": "text", "id": N}` (the end
id writes no text and sends none), then `event: end` with
`{"tokens", "finish": "end"|"length", "seconds", "first_token_s", "tokens_per_s",
"unknown_tokens"}` (the prompt's tokens the vocabulary lacks, each read as the unknown id);
otherwise one JSON answer `{"model_name", "text" (the prompt and its continuation, as
`rnnc generate` prints it), "completion", "ids", "finish", "stats"}`. A client that
disconnects stops the generation before its next token. A model that cannot generate
(no `feedback:` output, or one that answers questions) is a 400 that says why; the
counter `rnnc_serve_generated_tokens_total` (by model) counts the tokens chosen.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

from prometheus_client import Counter
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from rnnc.errors import RnncError
from rnnc.runtime_decode import Decoder
from rnnc.sampling import Sampling

from .metrics import ServeMetrics
from .models import ServedModel, model_named
from .tensors import BadRequest, parse_json

DEFAULT_TOKENS = 200  # as rnnc generate's -n
FIELDS = ("prompt", "max_tokens", "temperature", "top_k", "top_p", "seed", "greedy")
JSON_CHUNK = 16  # tokens per worker call without streaming: a disconnect is seen within this many


def generate_routes(models: Sequence[ServedModel], settings: Any, metrics: ServeMetrics) -> list[BaseRoute]:
    """The generate routes for `models` (see the module)."""
    decoders: dict[str, Decoder | str] = {}  # name -> its decoder, or why it has none
    counted = Counter("rnnc_serve_generated_tokens", "Tokens chosen by generate requests", ["model"], registry=metrics.registry)

    def decoder_of(model: ServedModel) -> Decoder:
        if model.name not in decoders:
            path = model.predictor.path
            try:
                decoders[model.name] = Decoder(path, threads=model.predictor.threads, opened=model.predictor)
            except RnncError as err:  # the path is the server's business, not the caller's
                decoders[model.name] = f"model '{model.name}' cannot generate: " + str(err).replace(f"{path}: ", "")
        found = decoders[model.name]
        if isinstance(found, str):
            raise BadRequest(found)
        if not found.next_token:
            raise BadRequest(f"model '{model.name}' answers questions ({', '.join(found.questions)}) rather than continuing "
                             "a prompt; generate is for next-token models (rnnc predict decodes questions)")
        return found

    async def generate(request: Request) -> Response:
        model = model_named(models, request.path_params.get("name"), "generate")
        decoder = decoder_of(model)
        prompt, n, sample = _asked(parse_json(await request.body()), settings.max_tokens)
        prompt_of = prompt if isinstance(prompt, str) else " ".join(map(str, prompt))
        try:
            ids = decoder.prompt_ids(prompt)
        except RnncError as err:
            raise BadRequest(str(err).replace("--prompt:", "prompt:")) from None
        if not ids and decoder.plan.start is None:
            raise BadRequest("prompt: a next-token model needs at least one token to continue (its spec gives no start id)")
        run = _Run(decoder, prompt, n, sample, lambda count: counted.labels(model=model.name).inc(count))
        streamed = "text/event-stream" in request.headers.get("accept", "")
        try:
            first = await run.next(1)  # the prompt's chunk: a refusal is still a 400, not a broken stream
        except RnncError as err:
            raise BadRequest("; ".join(str(err).splitlines())) from None
        if streamed:
            return StreamingResponse(_events(run, first, request), media_type="text/event-stream",
                                     headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        tokens = first
        while run.going and not await request.is_disconnected():
            tokens += await run.next(JSON_CHUNK)
        completion = "".join(run.pieces(tokens))
        return JSONResponse({"model_name": model.name, "text": prompt_of + completion, "completion": completion,
                             "ids": tokens, "finish": run.finish, "stats": run.stats()})

    return [Route("/v1/generate", generate, methods=["POST"]), Route("/v1/models/{name}/generate", generate, methods=["POST"])]


class _Run:
    """One generation: its token iterator, stepped in a worker thread `count` tokens at a time."""

    def __init__(self, decoder: Decoder, prompt: str | list[int], n: int, sample: Sampling | None, count: Any):
        self.decoder, self.n, self.count = decoder, n, count
        self.tokens = decoder.generate(prompt, n, sample=sample)
        self.going, self.finish, self.chosen = True, "length", 0
        self.after = bool(prompt)
        self.unknown = decoder.unknown_tokens(prompt) if isinstance(prompt, str) else []  # each read as the unknown id
        self.began = time.perf_counter()
        self.first_at: float | None = None

    def _take(self, count: int) -> list[int]:
        got: list[int] = []
        for token in self.tokens:
            got.append(token)
            if token == self.decoder.plan.end:
                self.going, self.finish = False, "end"
                break
            if len(got) >= count:
                break
        else:
            self.going = False
        return got

    async def next(self, count: int) -> list[int]:
        """The next `count` tokens at most (fewer at the end)."""
        got = await asyncio.get_running_loop().run_in_executor(None, self._take, count)
        if self.first_at is None and got:
            self.first_at = time.perf_counter()
        self.chosen += len(got)
        if self.chosen >= self.n:
            self.going = False
        self.count(len(got))
        return got

    def pieces(self, tokens: list[int]) -> list[str]:
        """Each token's text as it continues the text so far (rnnc generate's)."""
        out = []
        for token in tokens:
            piece = self.decoder.continuation([token], after=self.after)
            self.after = self.after or bool(piece)
            out.append(piece)
        return out

    def stats(self) -> dict[str, Any]:
        ended = time.perf_counter()
        later = self.chosen - 1
        rate = later / (ended - self.first_at) if self.first_at is not None and later > 0 and ended > self.first_at else None
        return {"tokens": self.chosen, "seconds": round(ended - self.began, 4),
                "first_token_s": None if self.first_at is None else round(self.first_at - self.began, 4),
                "tokens_per_s": None if rate is None else round(rate, 1), "unknown_tokens": self.unknown}


async def _events(run: _Run, first: list[int], request: Request) -> AsyncIterator[str]:
    tokens = first
    while True:
        for token, piece in zip(tokens, run.pieces(tokens), strict=True):
            if token != run.decoder.plan.end:
                yield f"data: {json.dumps({'token': piece, 'id': token}, ensure_ascii=False)}\n\n"
        if not run.going or await request.is_disconnected():
            break
        tokens = await run.next(1)
    yield f"event: end\ndata: {json.dumps({**run.stats(), 'finish': run.finish})}\n\n"


def _asked(body: Any, cap: int) -> tuple[str | list[int], int, Sampling | None]:
    """(prompt, max tokens, sampling or None for greedy) from a request body."""
    if not isinstance(body, dict):
        raise BadRequest('the body must be {"prompt": "...", "max_tokens": N, ...}')
    if unknown := sorted(set(body) - set(FIELDS)):
        raise BadRequest(f"unknown field '{unknown[0]}'; generate takes: {', '.join(FIELDS)}")
    prompt = body.get("prompt", "")
    if not (isinstance(prompt, str) or (isinstance(prompt, list) and all(type(i) is int for i in prompt))):
        raise BadRequest("'prompt' must be a string (or a list of token ids)")
    problems = []
    n = body.get("max_tokens", min(DEFAULT_TOKENS, cap))
    if type(n) is not int or not 1 <= n <= cap:
        problems.append(f"'max_tokens' must be a whole number in [1, {cap}] (the server's limit), got {json.dumps(n)}")
    kinds = {"temperature": (int, float), "top_k": (int,), "top_p": (int, float), "seed": (int,)}
    given = {k: body[k] for k in kinds if body.get(k) is not None}
    for key, value in given.items():
        if isinstance(value, bool) or not isinstance(value, kinds[key]):
            problems.append(f"'{key}' must be a {'whole number' if kinds[key] == (int,) else 'number'}, got {json.dumps(value)}")
    greedy = body.get("greedy", False)
    if not isinstance(greedy, bool):
        problems.append(f"'greedy' must be true or false, got {json.dumps(greedy)}")
    elif greedy and given:
        problems.append(f"'greedy' takes the likeliest token and samples nothing: drop {', '.join(given)}")
    if problems:
        raise BadRequest("; ".join(problems))
    sample = Sampling(float(given.get("temperature", 1.0)), given.get("top_k"), given.get("top_p"), given.get("seed"))
    if found := sample.problems():
        raise BadRequest("; ".join(p.replace("--top-", "top_").replace("--", "") for p in found))
    return prompt, n, None if greedy else sample
