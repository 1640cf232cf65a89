"""Real processes for scale-out tests: Celery workers and API replicas on 127.0.0.1."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import httpx

from tests.serverproc import ROOT, free_port

PY = [sys.executable, "-m"]
READY = "gpt2-agent worker process ready"


class Proc:
    """A process in its own session (signals go to its whole group: a worker and its children)."""

    def __init__(self, args: Sequence[str], env: dict[str, str], log: Path) -> None:
        self.args = list(args)
        self.env = env
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Proc:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        handle = self.log.open("ab")
        self.proc = subprocess.Popen(
            self.args, env=self.env, stdout=handle, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True
        )
        return self

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def wait_for(self, needle: str, count: int = 1, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.text().count(needle) >= count:
                return
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"{self.args} exited: {self.text()[-3000:]}")
            time.sleep(0.1)
        raise AssertionError(f"{needle!r} x{count} not seen in time: {self.text()[-3000:]}")

    def signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGCONT)
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self, timeout: float = 15.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGCONT)
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()


def worker(env: dict[str, str], log: Path, *, concurrency: int = 2, queues: str | None = None) -> Proc:
    """``gpt2-agent worker``, started and ready (each of its processes has built its engine)."""
    args = [*PY, "gpt2_agent.cli.worker", "--concurrency", str(concurrency), "--loglevel", "info"]
    if queues:
        args += ["--queues", queues]
    proc = Proc(args, env, log).start()
    proc.wait_for(READY, count=concurrency)
    return proc


class Api(Proc):
    """``gpt2-agent serve --no-executor`` on a free port."""

    def __init__(self, env: dict[str, str], log: Path, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        super().__init__(
            [
                *PY,
                "gpt2_agent.cli.main",
                "serve",
                "--no-executor",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
            ],
            env,
            log,
        )

    def start(self) -> Api:
        super().start()
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited: {self.text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"server did not become ready: {self.text()[-3000:]}")


def wait_until(
    predicate: object, timeout: float = 60.0, interval: float = 0.2, what: str = "condition"
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(interval)
    raise AssertionError(f"{what} not reached within {timeout:.0f}s")
