"""The operators' web page: ``taskstore dashboard``, or ``app(settings)`` mounted in an ASGI
application of yours. It needs the ``dashboard`` extra (Starlette, Jinja2, uvicorn)."""

from worker.tools.dashboard.app import app

__all__ = ["app"]
