"""Executors move claimed tasks to handler code; the engine holds all the logic."""

from gpt2_agent.engine.executors.base import Executor, UnknownExecutor, load_executor

__all__ = ["Executor", "UnknownExecutor", "load_executor"]
