"""``gpt2-agent demo`` as a real process: warehouse, keys, mail sink, server (models skipped here:
training is covered by the training and order tests)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import httpx

from gpt2_agent.client import Client
from tests.serverproc import CLI, ROOT, cli_env, free_port


def test_demo_sets_up_and_serves(tmp_path: Path) -> None:
    port = free_port()
    env = cli_env(tmp_path / "home", COLUMNS="200")
    log = tmp_path / "demo.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*CLI, "demo", "--orders", "500", "--no-train", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            start_new_session=True,
        )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        text = log.read_text()
        keys = dict(re.findall(r"(operator|reviewer) key \((?:admin|approver)\)\s+(g2a_\S+)", text))
        assert set(keys) == {"operator", "reviewer"}, text
        # The original form's route is open in the demo; without a trained model it says how to train one.
        r = httpx.post(f"{url}/order/audit", json={"orderNo": "66120"}, timeout=30)
        assert r.status_code == 503 and "gpt2-agent train" in r.json()["error"]
        with Client(url, keys["operator"]) as c:
            task = c.submit_task("send_email", {"to": ["a@example.com"], "subject": "demo", "body": "hi"})
            assert c.wait_task(task["id"], timeout=30)["status"] == "succeeded"
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not list((tmp_path / "home" / "mail").glob("*.eml")):
            time.sleep(0.1)
        assert len(list((tmp_path / "home" / "mail").glob("*.eml"))) == 1
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
