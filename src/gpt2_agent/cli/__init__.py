"""Command line: ``gpt2-agent``."""
