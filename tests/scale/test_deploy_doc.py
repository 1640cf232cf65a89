"""docs/deploy.md is run, not just read: its ``bash deploy-test`` blocks are executed in order on
127.0.0.1 (PostgreSQL, Redis, two workers, two API replicas, a balancer on the proxy port), then
workflows go through the proxy port.

Only values a test must own are substituted (see the doc's last section): database and broker
URLs, the shared folder, a queue prefix, ports, 0.0.0.0. nginx is not installed on the test
machine, so a small TCP round-robin balancer (``TcpProxy``) listens on the proxy port instead.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.scale import procs
from tests.scale.conftest import delete_queues
from tests.scale.tcpproxy import TcpProxy
from tests.serverproc import ROOT, cli_env, create_key, free_port

DOC = ROOT / "docs" / "deploy.md"
BLOCK = re.compile(r"^```bash deploy-test\n(.*?)^```", re.S | re.M)
PORTS = ("8001", "8002", "8080")
# What the test must replace; the doc has to set each of them (so the page stays complete).
OWNED = (
    "GPT2_AGENT_HOME",
    "GPT2_AGENT_DATABASE_URL",
    "GPT2_AGENT_BROKER_URL",
    "GPT2_AGENT_MODELS_DIR",
    "GPT2_AGENT_STORAGE_DIR",
)


def doc_lines() -> list[str]:
    """Command lines of the tested blocks, in order, without comments and blank lines."""
    lines = []
    for block in BLOCK.findall(DOC.read_text(encoding="utf-8")):
        for raw in block.splitlines():
            line = raw.strip()
            if line and not line.startswith("#"):
                lines.append(line)
    return lines


def cli() -> str:
    """The installed ``gpt2-agent`` (``GPT2_AGENT_CLI`` may point elsewhere)."""
    return os.environ.get("GPT2_AGENT_CLI") or str(Path(sys.executable).parent / "gpt2-agent")


def test_the_doc_has_the_tested_blocks() -> None:
    lines = doc_lines()
    exports = [line for line in lines if line.startswith("export ")]
    names = {line.split()[1].split("=", 1)[0] for line in exports}
    assert set(OWNED) <= names, f"docs/deploy.md no longer sets {set(OWNED) - names}"
    commands = [line for line in lines if not line.startswith("export ")]
    assert sum("gpt2-agent worker" in c for c in commands) >= 2
    assert sum("gpt2-agent serve" in c for c in commands) >= 2


def test_deploy_doc_commands_run_on_loopback(
    tmp_path: Path, pg_url: str, redis_url: str, prefix: str
) -> None:
    help_text = subprocess.run([cli(), "--help"], capture_output=True, text=True, timeout=60).stdout
    if " worker " not in help_text:
        pytest.fail("`gpt2-agent worker` is not mounted in the CLI (gpt2_agent.cli.main)")
    shared = tmp_path / "shared"  # stands in for the shared mount
    balancer = TcpProxy([free_port(), free_port()], listen=False)
    ports = {"8001": balancer.targets[0][1], "8002": balancer.targets[1][1], "8080": balancer.port}
    overrides = {
        "GPT2_AGENT_HOME": str(shared),
        "GPT2_AGENT_DATABASE_URL": pg_url,
        "GPT2_AGENT_BROKER_URL": redis_url,
        "GPT2_AGENT_MODELS_DIR": str(shared / "models"),
        "GPT2_AGENT_STORAGE_DIR": str(shared / "storage"),
    }
    env = cli_env(
        shared, GPT2_AGENT_BROKER_QUEUE_PREFIX=prefix, GPT2_AGENT_PLUGINS='["tests.plugins.sample"]'
    )

    def substitute(line: str) -> str:
        line = re.sub(r"\b(8001|8002|8080)\b", lambda m: str(ports[m.group(1)]), line)
        line = line.replace("0.0.0.0", "127.0.0.1")
        return re.sub(r"^gpt2-agent\b", cli(), line)

    services: list[procs.Proc] = []
    pending: list[tuple[procs.Proc, str, int]] = []  # started, not yet known to be ready

    def wait_ready() -> None:
        for proc, kind, value in pending:
            if kind == "worker":
                proc.wait_for(procs.READY, count=value)
            else:
                procs.wait_until(lambda p=value: _ready(p), timeout=90, what=f"API on port {value}")
        pending.clear()

    try:
        balancer.restore()
        for line in doc_lines():
            if line.startswith("export "):
                name, value = line[len("export ") :].split("=", 1)
                env[name] = overrides.get(name, shlex.split(value)[0])
                continue
            background = line.endswith("&")
            args = shlex.split(substitute(line.rstrip("&").strip()))
            if background:
                proc = procs.Proc(args, env, tmp_path / f"service{len(services)}.log").start()
                services.append(proc)
                if "worker" in args:
                    pending.append((proc, "worker", int(args[args.index("--concurrency") + 1])))
                else:
                    pending.append((proc, "api", int(args[args.index("--port") + 1])))
                continue
            wait_ready()
            result = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120, cwd=ROOT)
            assert result.returncode == 0, f"{line!r} failed: {result.stdout}{result.stderr}"
        wait_ready()

        # Beyond the doc: real work through the proxy port, spread over both replicas.
        key = create_key(env, "submitter", "deploy-check")
        base = f"http://127.0.0.1:{ports['8080']}"
        headers = {"Authorization": f"Bearer {key}"}
        fresh = httpx.Limits(max_keepalive_connections=0)  # a new connection (replica) per request
        with httpx.Client(base_url=base, headers=headers, limits=fresh, timeout=30) as http:
            run_ids = []
            for i in range(12):
                response = http.post(
                    "/api/v1/workflows/sample-three/runs", json={"input": {"value": i, "sleep": 0.2}}
                )
                assert response.status_code == 201, response.text
                run_ids.append(response.json()["id"])

            def finished() -> bool:
                return all(http.get(f"/api/v1/runs/{r}").json()["status"] == "succeeded" for r in run_ids)

            procs.wait_until(finished, timeout=90, interval=0.5, what="runs through the proxy succeeded")
        apis = [s for s in services if "serve" in s.args]
        workers = [s for s in services if "worker" in s.args]
        assert len(apis) == 2 and len(workers) == 2
        for api in apis:
            assert "POST /api/v1/workflows/sample-three/runs" in api.text(), "a replica got no requests"
        for worker in workers:
            assert "succeeded in" in worker.text(), "a worker ran no steps"
    finally:
        for proc in services:
            proc.stop()
        balancer.cut()
        delete_queues(redis_url, prefix, ["default", "inference"])


def _ready(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
