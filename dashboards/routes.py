"""Every dashboard page, behind `dashboard.auth`; static files; the public status
page and badges are registered by their modules without the reader check."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Depends
from fastapi.staticfiles import StaticFiles

from dashboards import overview
from dashboards.security import require_reader

STATIC = Path(__file__).resolve().parent / "static"

pages = APIRouter(dependencies=[Depends(require_reader)])
pages.include_router(overview.router)

public = APIRouter()


def static_files() -> StaticFiles:
    return StaticFiles(directory=STATIC)
