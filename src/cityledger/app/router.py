"""Routing: which module handles which message type and which governance action."""

from __future__ import annotations

from typing import Any, Sequence

from ..core.encoding import DecodeError, decoder
from ..core.errors import ERR_UNKNOWN_MESSAGE
from ..modules.base import Context, Handler, Module


class MessageRouter:
    """Maps each message type to its module's handler; built once from the module list."""

    def __init__(self, modules: Sequence[Module]) -> None:
        self.handlers: dict[type, Handler] = {}
        self.owner: dict[type, str] = {}
        for module in modules:
            for kind, handler in module.handlers.items():
                if kind in self.handlers:
                    raise ValueError(f"message {kind.__struct_config__.tag} registered twice")
                self.handlers[kind] = handler
                self.owner[kind] = module.name

    def message_types(self) -> list[type]:
        """All message types, sorted by tag."""
        return sorted(self.handlers, key=lambda kind: kind.__struct_config__.tag)

    def dispatch(self, ctx: Context, message: Any) -> None:
        """Run the handler of a message."""
        handler = self.handlers.get(type(message))
        if handler is None:
            raise ERR_UNKNOWN_MESSAGE(f"messages: no handler for {type(message).__name__}", "messages")
        handler(ctx, message)


class ActionRouter:
    """Decodes and executes governance actions contributed by every module."""

    def __init__(self, modules: Sequence[Module]) -> None:
        self.handlers: dict[type, Handler] = {}
        for module in modules:
            self.handlers.update(module.actions)
        # The module that runs proposals says which of its errors an unknown action gets.
        unknown = [module.unknown_action for module in modules if module.unknown_action is not None]
        if len(unknown) > 1:
            raise ValueError("modules: more than one module declares unknown_action")
        self._unknown = unknown[0] if unknown else ERR_UNKNOWN_MESSAGE
        kinds = sorted(self.handlers, key=lambda kind: kind.__struct_config__.tag)
        self.tags = [kind.__struct_config__.tag for kind in kinds]
        if kinds:
            from typing import Union

            self._decoder = decoder(kinds[0] if len(kinds) == 1 else Union[tuple(kinds)])

    def decode(self, raw: bytes) -> Any:
        """Decode an action; raise TxError naming the known action types otherwise."""
        try:
            return self._decoder.decode(raw)
        except (DecodeError, AttributeError) as exc:
            raise self._unknown(f"action: not a known action ({exc}); known: {', '.join(self.tags)}",
                                "action") from None

    def execute(self, ctx: Context, action: Any) -> None:
        """Run an action's handler."""
        self.handlers[type(action)](ctx, action)
