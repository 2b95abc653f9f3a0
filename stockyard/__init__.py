"""Stockyard: an LLM gateway configured by a small pipeline language."""

__version__ = "0.1.0"
