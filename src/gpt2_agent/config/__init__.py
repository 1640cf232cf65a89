"""One settings object for the whole system (env vars ``GPT2_AGENT_*`` + optional TOML)."""

from gpt2_agent.config.settings import Settings, load_settings, masked_settings

__all__ = ["Settings", "load_settings", "masked_settings"]
