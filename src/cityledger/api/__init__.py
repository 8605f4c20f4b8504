"""The REST API (FastAPI): submit txs, read txs, blocks, accounts and proven state, node status."""

from .app import create_app
from .server import serve

__all__ = ["create_app", "serve"]
