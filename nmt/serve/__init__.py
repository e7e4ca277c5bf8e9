"""The translation server: a FastAPI app (`app`), request batching (`batcher`) and the attention page (`static/`).

Start it with `nmt-serve checkpoint=PATH`; `create_app` builds the same app for tests and other hosts.
"""
