"""GPT-2 Agent: business-process automation with GPT-2 models trained on your own data."""

__version__ = "0.1.0"
