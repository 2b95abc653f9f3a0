"""Field checks on a routed request body. They run inside the route's chain, after modules
such as ``trace``, so a malformed request is recorded like any other rejection."""

from __future__ import annotations

from ..core.context import RequestContext
from ..exceptions import InvalidRequest

# Required fields per endpoint, beyond `model` (checked before routing).
_REQUIRED: dict[str, tuple[tuple[str, type | tuple[type, ...], str], ...]] = {
    "/v1/chat/completions": (("messages", list, "a list of messages"),),
    "/v1/completions": (("prompt", (str, list), "a string or a list"),),
    "/v1/embeddings": (("input", (str, list), "a string or a list"),),
}
_TYPED: tuple[tuple[str, type | tuple[type, ...], str], ...] = (
    ("stream", bool, "true or false"),
    ("max_tokens", int, "an integer"),
    ("max_completion_tokens", int, "an integer"),
    ("n", int, "an integer"),
    ("temperature", (int, float), "a number"),
    ("top_p", (int, float), "a number"),
    ("stream_options", dict, "an object"),
    ("tools", list, "a list"),
)


def validate(ctx: RequestContext) -> None:
    body = ctx.body
    for name, kind, words in _REQUIRED.get(ctx.path, ()):
        if name not in body:
            raise InvalidRequest(f"`{name}` is required", param=name)
        if not isinstance(body[name], kind):
            raise InvalidRequest(f"`{name}` must be {words}", param=name)
    for name, kind, words in _TYPED:
        value = body.get(name)
        if value is None:
            continue
        # bool is an int in Python; only `stream` may be a boolean
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
            raise InvalidRequest(f"`{name}` must be {words}", param=name)
    if ctx.path == "/v1/chat/completions" and not all(
        isinstance(m, dict) for m in body["messages"]
    ):
        raise InvalidRequest("every item of `messages` must be an object", param="messages")
