"""The REST API (FastAPI): submit txs, read txs, blocks, accounts and proven state, node status."""

from .app import create_app
from .connections import ServerLimits
from .server import serve, server_config

__all__ = ["ServerLimits", "create_app", "serve", "server_config"]
