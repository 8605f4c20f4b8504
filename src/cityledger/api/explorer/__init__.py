"""The portal every node serves on its API port: the block explorer at / and the city dashboard.

Server-rendered HTML (Jinja2) with small hand-written JS; docs/PORTAL.md describes the pages.
"""

from __future__ import annotations

from fastapi import FastAPI

from ..service import NodeService
from .dashboard import include_dashboard
from .pages import include_pages
from .sections import SECTIONS, Section

__all__ = ["SECTIONS", "Section", "include_explorer"]


def include_explorer(app: FastAPI, service: NodeService) -> None:
    """Serve the explorer's pages, the dashboard and the dashboard's data routes."""
    include_dashboard(app, service, include_pages(app, service))
