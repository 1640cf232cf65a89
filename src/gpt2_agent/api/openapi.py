"""Write the OpenAPI document (``python -m gpt2_agent.api.openapi [PATH]``).

The repository keeps it at ``openapi.json`` so teams can generate clients without a server.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any


def openapi_document() -> dict[str, Any]:
    """The schema of an app on a throwaway home (it does not depend on settings)."""
    from gpt2_agent.api.app import create_app
    from gpt2_agent.config import load_settings

    with tempfile.TemporaryDirectory() as home:
        app = create_app(load_settings(home=home, plugins=[], workflows_dir=None), start_executor=False)
        document = app.openapi()
        app.state.db.dispose()
    return document


def render() -> str:
    return json.dumps(openapi_document(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> None:
    target = Path(argv[1]) if len(argv) > 1 else Path("openapi.json")
    target.write_text(render(), encoding="utf-8")


if __name__ == "__main__":
    main(sys.argv)
