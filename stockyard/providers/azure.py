"""Azure OpenAI: OpenAI payloads on per-deployment URLs with an ``api-version`` and ``api-key``."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING
from urllib.parse import quote

from ..core.env import resolve
from ..core.generation import ProviderSpec
from ..dsl.schema import AttributeSpec, ProviderKind, frozen_map
from ..dsl.value_types import Pairs, Text
from .base import UpstreamRequest
from .openai import OpenAIAdapter

if TYPE_CHECKING:
    from .clients import HttpClients

KIND = ProviderKind(
    name="azure",
    doc="Azure OpenAI Service; `base_url` is the resource endpoint.",
    protocol="azure",
    base_url=None,
    key_env="AZURE_OPENAI_API_KEY",
    attributes=frozen_map(
        {
            "api_version": AttributeSpec(
                "api_version",
                "The Azure OpenAI API version.",
                'api_version "2024-10-21"',
                positional=(Text(),),
                required=True,
            ),
            "deployments": AttributeSpec(
                "deployments",
                "Model name -> deployment name (default: the model name).",
                'deployments ["gpt-4o" -> "my-gpt4o"]',
                positional=(Pairs(),),
            ),
        }
    ),
)


class AzureAdapter(OpenAIAdapter):
    """OpenAI's payloads and answers, sent to ``{endpoint}/openai/deployments/{deployment}/
    {endpoint path}?api-version=…`` with the key in an ``api-key`` header. The deployment is
    the model's entry in ``deployments``, else the model name itself."""

    missing_base_url = "has no endpoint (`base_url`; is its variable set?)"

    def __init__(self, spec: ProviderSpec, clients: HttpClients) -> None:
        super().__init__(spec, clients)
        # no fallback to OpenAI's address: an unset endpoint must not send the key elsewhere
        endpoint = (resolve(spec.base_url) or "").rstrip("/")
        self.base_url = endpoint.removesuffix("/openai")
        self.api_version = str(spec.options.get("api_version") or "")
        self.deployments = dict(spec.options.get("deployments") or ())

    def deployment(self, model: str) -> str:
        return str(self.deployments.get(model, model))

    def url(self, request: UpstreamRequest) -> str:
        deployment = quote(self.deployment(request.model), safe="")
        version = quote(self.api_version, safe="")
        return (
            f"{self.base_url}/openai/deployments/{deployment}/{request.endpoint}"
            f"?api-version={version}"
        )

    def request_headers(self, request: UpstreamRequest) -> dict[str, str]:
        headers = super().request_headers(replace(request, api_key=None))
        overridden = {name.lower() for name in request.ctx.upstream_headers}
        if request.api_key and "api-key" not in overridden:
            headers["api-key"] = request.api_key
        return headers
