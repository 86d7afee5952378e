"""`rnnc serve`: an HTTP model server on onnxruntime (the `serve` extra: starlette,
uvicorn, prometheus_client). `models` loads what is served, `app` builds the Starlette
app (Open Inference Protocol, `/v1/predict`, errors, auth), `tensors` reads and writes
the protocol's tensors, `plain` is `/v1/predict`'s JSON, `page` the page at `/`.
Nothing outside this package and `rnnc.cli.serve` imports it. See docs/serve.md.
"""
