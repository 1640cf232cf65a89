"""A typed client for the ``/api/v1`` routes (used by the CLI's remote commands).

>>> from gpt2_agent.client import Client
>>> with Client("http://127.0.0.1:8000", api_key="g2a_...") as c:
...     task = c.submit_task("send_email", {"to": ["a@example.com"], "subject": "hi", "body": "hello"})
...     c.wait_task(task["id"])["status"]
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx

TERMINAL_TASK = {"succeeded", "failed", "cancelled"}
TERMINAL_RUN = {"succeeded", "failed", "cancelled", "rejected"}


class ApiError(Exception):
    """An HTTP error answer, with the server's ``detail`` message."""

    def __init__(self, status_code: int, detail: str, errors: list[Any] | None = None) -> None:
        super().__init__(f"HTTP {status_code}: {detail}")
        self.status_code = status_code
        self.detail = detail
        self.errors = errors or []


class Client:
    """Synchronous client. ``base_url`` is the server root (``http://host:port``)."""

    def __init__(self, base_url: str, api_key: str | None = None, *, timeout: float = 30.0) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(base_url=base_url.rstrip("/"), headers=headers, timeout=timeout)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise ApiError(0, f"cannot reach {self._http.base_url}: {exc}") from None
        if response.status_code >= 400:
            try:
                body = response.json()
                detail, errs = str(body.get("detail", response.text)), body.get("errors", [])
            except ValueError:
                detail, errs = response.text or response.reason_phrase, []
            raise ApiError(response.status_code, detail, errs)
        if response.headers.get("content-type", "").startswith("application/json"):
            return response.json()
        return response.content

    # --- tasks --------------------------------------------------------------------------------

    def submit_task(
        self, type_: str, input_: dict[str, Any], *, idempotency_key: str | None = None
    ) -> dict[str, Any]:
        """Submit a task; with ``idempotency_key`` a retry returns the original task."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        result: dict[str, Any] = self._request(
            "POST", "/api/v1/tasks", json={"type": type_, "input": input_}, headers=headers
        )
        return result

    def get_task(self, task_id: int) -> dict[str, Any]:
        result: dict[str, Any] = self._request("GET", f"/api/v1/tasks/{task_id}")
        return result

    def list_tasks(
        self, *, status: str | None = None, type_: str | None = None, limit: int = 50, offset: int = 0
    ) -> dict[str, Any]:
        params: dict[str, Any] = {"limit": limit, "offset": offset}
        if status:
            params["status"] = status
        if type_:
            params["type"] = type_
        result: dict[str, Any] = self._request("GET", "/api/v1/tasks", params=params)
        return result

    def cancel_task(self, task_id: int) -> dict[str, Any]:
        result: dict[str, Any] = self._request("POST", f"/api/v1/tasks/{task_id}/cancel")
        return result

    def task_events(self, task_id: int) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._request(
            "GET", f"/api/v1/tasks/{task_id}/events", headers={"Accept": "application/json"}
        )
        return result

    def wait_task(self, task_id: int, *, timeout: float = 60.0, poll: float = 0.2) -> dict[str, Any]:
        """Poll until the task is finished; raises TimeoutError after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            task = self.get_task(task_id)
            if task["status"] in TERMINAL_TASK:
                return task
            if time.monotonic() > deadline:
                raise TimeoutError(f"task {task_id} still {task['status']} after {timeout:g}s")
            time.sleep(poll)

    # --- workflows and runs -------------------------------------------------------------------

    def list_workflows(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._request("GET", "/api/v1/workflows")
        return result

    def start_run(
        self, workflow: str, input_: dict[str, Any], *, idempotency_key: str | None = None
    ) -> dict[str, Any]:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        result: dict[str, Any] = self._request(
            "POST", f"/api/v1/workflows/{workflow}/runs", json={"input": input_}, headers=headers
        )
        return result

    def get_run(self, run_id: int) -> dict[str, Any]:
        result: dict[str, Any] = self._request("GET", f"/api/v1/runs/{run_id}")
        return result

    def list_runs(self, *, status: str | None = None, limit: int = 50, offset: int = 0) -> dict[str, Any]:
        params: dict[str, Any] = {"limit": limit, "offset": offset}
        if status:
            params["status"] = status
        result: dict[str, Any] = self._request("GET", "/api/v1/runs", params=params)
        return result

    def cancel_run(self, run_id: int) -> dict[str, Any]:
        result: dict[str, Any] = self._request("POST", f"/api/v1/runs/{run_id}/cancel")
        return result

    def wait_run(self, run_id: int, *, timeout: float = 60.0, poll: float = 0.2) -> dict[str, Any]:
        """Poll until the run finishes or parks on an approval."""
        deadline = time.monotonic() + timeout
        while True:
            run = self.get_run(run_id)
            if run["status"] in TERMINAL_RUN or run["status"] == "waiting_approval":
                return run
            if time.monotonic() > deadline:
                raise TimeoutError(f"run {run_id} still {run['status']} after {timeout:g}s")
            time.sleep(poll)

    # --- approvals ----------------------------------------------------------------------------

    def list_approvals(self, *, status: str = "pending", limit: int = 50, offset: int = 0) -> dict[str, Any]:
        result: dict[str, Any] = self._request(
            "GET", "/api/v1/approvals", params={"status": status, "limit": limit, "offset": offset}
        )
        return result

    def decide(self, approval_id: int, decision: str, comment: str | None = None) -> dict[str, Any]:
        """``decision`` is ``approve`` or ``reject``."""
        result: dict[str, Any] = self._request(
            "POST",
            f"/api/v1/approvals/{approval_id}/decision",
            json={"decision": decision, "comment": comment},
        )
        return result

    # --- files --------------------------------------------------------------------------------

    def upload_file(self, path: str | Path, *, name: str | None = None) -> dict[str, Any]:
        path = Path(path)
        with path.open("rb") as handle:
            result: dict[str, Any] = self._request(
                "POST", "/api/v1/files", files={"file": (name or path.name, handle)}
            )
        return result

    def download_file(self, file_id: int) -> bytes:
        result: bytes = self._request("GET", f"/api/v1/files/{file_id}/content")
        return result

    # --- keys ---------------------------------------------------------------------------------

    def create_key(self, name: str, role: str) -> dict[str, Any]:
        result: dict[str, Any] = self._request("POST", "/api/v1/keys", json={"name": name, "role": role})
        return result

    def list_keys(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._request("GET", "/api/v1/keys")
        return result

    def revoke_key(self, key_id: int) -> dict[str, Any]:
        result: dict[str, Any] = self._request("DELETE", f"/api/v1/keys/{key_id}")
        return result

    # --- health -------------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        result: dict[str, Any] = self._request("GET", "/healthz")
        return result
