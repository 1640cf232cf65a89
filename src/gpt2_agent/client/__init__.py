"""Python SDK for the GPT-2 Agent HTTP API."""

from gpt2_agent.client.client import ApiError, Client

__all__ = ["ApiError", "Client"]
