"""Every dashboard page, behind `dashboard.auth`; static files; the public status
page and badges are registered by their modules without the reader check."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Depends
from fastapi.staticfiles import StaticFiles

from dashboards import (
    badges,
    incidents_pages,
    overview,
    phases_page,
    slo_page,
    status_page,
    targets_page,
)
from dashboards.security import require_reader

STATIC = Path(__file__).resolve().parent / "static"

pages = APIRouter(dependencies=[Depends(require_reader)])
pages.include_router(overview.router)
pages.include_router(slo_page.router)
pages.include_router(incidents_pages.router)
pages.include_router(targets_page.router)
pages.include_router(phases_page.router)

public = APIRouter()
public.include_router(badges.router)
public.include_router(status_page.router)


def static_files() -> StaticFiles:
    return StaticFiles(directory=STATIC)
