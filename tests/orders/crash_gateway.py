"""A payment gateway for the crash test: the sandbox, but the process dies right after a charge.

Configured with ``GPT2_AGENT_PAYMENT_GATEWAY="tests.orders.crash_gateway:crash_after_charge"``.
``GPT2_AGENT_CRASH_AFTER_CHARGE`` names a marker file: the first charge that finds no marker writes
it and SIGKILLs its own process, after the gateway committed the charge and before the engine
could record the step. Later charges (after a restart) pass through.
"""

from __future__ import annotations

import os
import signal

from gpt2_agent.actions.gateway import ChargeRequest, ChargeResult, SandboxGateway
from gpt2_agent.actions.warehouse import Warehouse
from gpt2_agent.config import Settings

MARKER_ENV = "GPT2_AGENT_CRASH_AFTER_CHARGE"


class CrashAfterCharge:
    """Wraps a gateway; dies once, after the inner gateway returned."""

    name = "sandbox"

    def __init__(self, inner: SandboxGateway, marker: str | None) -> None:
        self.inner = inner
        self.marker = marker

    def charge(self, request: ChargeRequest) -> ChargeResult:
        result = self.inner.charge(request)
        if self.marker and not os.path.exists(self.marker):
            with open(self.marker, "w", encoding="utf-8") as fh:
                fh.write(f"{request.idempotency_key} {result.reference}\n")
                fh.flush()
                os.fsync(fh.fileno())
            os.kill(os.getpid(), signal.SIGKILL)
        return result


def crash_after_charge(settings: Settings) -> CrashAfterCharge:
    """The factory named in ``settings.payment_gateway``."""
    return CrashAfterCharge(SandboxGateway(Warehouse(settings.warehouse_url)), os.environ.get(MARKER_ENV))
