"""The JSON body of every error the HTTP interface answers, `{"error": {...}}`.

One builder for the route error handlers (monitor/api.py) and the middlewares that
refuse before any route runs (rate limits, body cap, the readers' check), so the shape
documented in monitor/api_schemas.py `ErrorBody` cannot drift between them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi.responses import JSONResponse


def error_response(status: int, message: str, *, headers: Mapping[str, str] | None = None,
                   **extra: Any) -> JSONResponse:
    return JSONResponse({"error": {"status": status, "message": message, **extra}},
                        status_code=status, headers=headers)
