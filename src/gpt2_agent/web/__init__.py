"""The operator's web console: server-rendered pages (Jinja2 + htmx) over the HTTP API.

    >>> from gpt2_agent.api.app import create_app
    >>> app = create_app(settings)   # create_app calls gpt2_agent.web.install(app)

Pages fetch everything through ``/api/v1`` with the signed-in user's key (see :mod:`gpt2_agent.web.api`);
nothing here imports the engine, store or registry.
"""

from gpt2_agent.web.app import install

__all__ = ["install"]
