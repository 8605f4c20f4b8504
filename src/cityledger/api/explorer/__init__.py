"""The block explorer every node serves at / on its API port (server-rendered HTML, small JS)."""

from .pages import include_explorer
from .sections import SECTIONS, Section

__all__ = ["SECTIONS", "Section", "include_explorer"]
