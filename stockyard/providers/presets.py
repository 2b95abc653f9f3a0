"""Presets: OpenAI-compatible providers, known by their base URL and key variable."""

from __future__ import annotations

from ..dsl.schema import ProviderKind

_PRESETS = (
    ("groq", "Groq", "https://api.groq.com/openai/v1", "GROQ_API_KEY"),
    ("together", "Together AI", "https://api.together.xyz/v1", "TOGETHER_API_KEY"),
    ("deepseek", "DeepSeek", "https://api.deepseek.com/v1", "DEEPSEEK_API_KEY"),
    ("mistral", "Mistral AI", "https://api.mistral.ai/v1", "MISTRAL_API_KEY"),
    ("xai", "xAI", "https://api.x.ai/v1", "XAI_API_KEY"),
    ("openrouter", "OpenRouter", "https://openrouter.ai/api/v1", "OPENROUTER_API_KEY"),
    ("fireworks", "Fireworks AI", "https://api.fireworks.ai/inference/v1", "FIREWORKS_API_KEY"),
    ("perplexity", "Perplexity", "https://api.perplexity.ai", "PERPLEXITY_API_KEY"),
    ("cerebras", "Cerebras", "https://api.cerebras.ai/v1", "CEREBRAS_API_KEY"),
    ("ollama", "Ollama (local)", "http://127.0.0.1:11434/v1", None),
    ("vllm", "vLLM (local)", "http://127.0.0.1:8000/v1", None),
)

KINDS = tuple(
    ProviderKind(
        name=name,
        doc=f"{title}, through its OpenAI-compatible API.",
        protocol="openai",
        base_url=url,
        key_env=env,
    )
    for name, title, url, env in _PRESETS
)
