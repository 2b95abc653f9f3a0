"""What every layer shares, importing nothing else of Stockyard's: the compiled configuration
(:mod:`.generation`, :mod:`.values`, :mod:`.span`), the per-request context (:mod:`.context`),
usage, responses, SSE framing (:mod:`.sse`) and ``env("NAME")`` lookup (:mod:`.env`).

Layers point one way: ``core`` <- ``dsl`` <- ``providers``, ``modules`` <- ``runtime`` <-
``api``, ``app``, ``cli``; ``tests/test_layers.py`` holds the code to it.
"""
