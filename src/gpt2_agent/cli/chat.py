"""``gpt2-agent chat``: talk to the agent from a terminal, through the server's ``POST /api/v1/chat``.

    gpt2-agent chat                          # interactive; /quit or Ctrl-D to leave
    gpt2-agent chat "审核订单 66120"          # one message, then exit
    gpt2-agent chat -c my-conv "yes"         # continue a conversation by id

The CLI mounts the :func:`chat` command function.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape

from gpt2_agent.cli.common import DEFAULT_URL, JsonOpt, KeyOpt, UrlOpt, console, fail, print_json
from gpt2_agent.client import ApiError, Client

EXIT_WORDS = {"/quit", "/exit", "/q", "quit", "exit", "退出"}


class ChatClient(Client):
    """The SDK client plus the NLU routes."""

    def chat(
        self, text: str, *, conversation_id: str | None = None, lang: str | None = None
    ) -> dict[str, Any]:
        """One message to ``POST /api/v1/chat``; answers ``conversation_id``, ``reply``, ``actions``."""
        body: dict[str, Any] = {"text": text}
        if conversation_id:
            body["conversation_id"] = conversation_id
        if lang:
            body["lang_hint"] = lang
        result: dict[str, Any] = self._request("POST", "/api/v1/chat", json=body)
        return result

    def parse(self, text: str) -> dict[str, Any]:
        """``POST /api/v1/nlu/parse``: the Rasa-shaped parse of ``text``."""
        result: dict[str, Any] = self._request("POST", "/api/v1/nlu/parse", json={"text": text})
        return result


def _show(answer: dict[str, Any], base_url: str) -> None:
    console.print(f"[bold cyan]agent>[/] {escape(str(answer.get('reply', '')))}", highlight=False)
    for action in answer.get("actions") or []:
        link = f"{base_url.rstrip('/')}{action.get('url', '')}"
        console.print(
            f"        [dim]{action.get('type')} #{action.get('id')}: {escape(link)}[/]", highlight=False
        )


def chat(
    message: Annotated[str | None, typer.Argument(help="Send one message and exit (omit to talk)")] = None,
    conversation: Annotated[
        str | None, typer.Option("--conversation", "-c", help="Continue this conversation id")
    ] = None,
    lang: Annotated[
        str | None, typer.Option("--lang", help="Reply language when the text has none: en or zh")
    ] = None,
    url: UrlOpt = DEFAULT_URL,
    api_key: KeyOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Talk to the agent: audit and pay orders, check or cancel tasks, in Chinese or English."""
    if not api_key:
        fail("an API key is needed: pass --api-key or set GPT2_AGENT_API_KEY")
    client = ChatClient(url, api_key)
    try:
        if message is not None:
            answer = _send(client, message, conversation, lang)
            if json_output:
                print_json(answer)
            else:
                _show(answer, url)
            return
        console.print("[dim]Type your request (Chinese or English); /quit to leave.[/]")
        while True:
            try:
                text = console.input("[bold green]you>[/] ")
            except (EOFError, KeyboardInterrupt):
                console.print()
                return
            if text.strip().lower() in EXIT_WORDS:
                return
            if not text.strip():
                continue
            answer = _send(client, text, conversation, lang, interactive=True)
            if not answer:
                continue
            conversation = str(answer.get("conversation_id") or conversation)
            if json_output:
                print_json(answer)
            else:
                _show(answer, url)
    finally:
        client.close()


def _send(
    client: ChatClient, text: str, conversation: str | None, lang: str | None, *, interactive: bool = False
) -> dict[str, Any]:
    try:
        return client.chat(text, conversation_id=conversation, lang=lang)
    except ApiError as exc:
        if interactive and exc.status_code in (409, 413, 422):
            console.print(f"[bold red]error:[/] {escape(exc.detail)}", highlight=False)
            return {}
        fail(exc.detail if exc.status_code else str(exc))


__all__ = ["ChatClient", "chat"]
