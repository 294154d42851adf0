"""A tiny web application for the server examples: one WSGI and one ASGI callable.

Each request logs one application record through the standard ``logging`` API;
the server's log configuration (gunicorn_conf.py, uvicorn_log_config.yaml)
decides that it goes, with the server's own records, into an mplog file.

    gunicorn -c examples/gunicorn_conf.py                  # serves app:app
    uvicorn app:asgi_app --app-dir examples --log-config examples/uvicorn_log_config.yaml
"""

from __future__ import annotations

import logging
from typing import Any, Callable

log = logging.getLogger("app")

BODY = b"ok\n"
HEADERS = [("Content-Type", "text/plain"), ("Content-Length", str(len(BODY)))]


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    """WSGI (gunicorn): log the request and answer "ok"."""
    log.info("handled %s?%s", environ.get("PATH_INFO", "/"), environ.get("QUERY_STRING", ""))
    start_response("200 OK", HEADERS)
    return [BODY]


async def asgi_app(
    scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]
) -> None:
    """ASGI (uvicorn): the same."""
    if scope["type"] != "http":  # lifespan events: nothing to set up or tear down
        return
    query = scope.get("query_string", b"").decode("latin-1")
    log.info("handled %s?%s", scope.get("path", "/"), query)
    headers = [(name.lower().encode(), value.encode()) for name, value in HEADERS]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": BODY})
