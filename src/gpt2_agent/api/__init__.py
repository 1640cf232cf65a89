"""HTTP API (FastAPI) and the composition root that wires parts together."""

from gpt2_agent.api.app import create_app

__all__ = ["create_app"]
