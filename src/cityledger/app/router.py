"""Routing: which module handles which message type and which governance action."""

from __future__ import annotations

import re
from typing import Any, Sequence

import msgspec

from ..core.encoding import DecodeError, compute_field_name, decoder
from ..core.errors import ERR_UNKNOWN_MESSAGE
from ..modules.base import Context, Handler, Module

_PATH = re.compile(r"`(\$[^`]*)`")


def _untyped(raw: bytes) -> Any:
    try:
        return msgspec.msgpack.decode(raw)
    except (msgspec.DecodeError, ValueError, RecursionError):
        return None


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

            union = kinds[0] if len(kinds) == 1 else Union[tuple(kinds)]
            self._decoder = decoder(union)
            self._info = msgspec.inspect.type_info(union)

    def decode(self, raw: bytes) -> Any:
        """Decode an action; raise TxError naming the known action types otherwise."""
        try:
            return self._decoder.decode(raw)
        except (DecodeError, AttributeError) as exc:
            text = _PATH.sub(lambda match: f"`action.{compute_field_name(self._info, match.group(1), _untyped(raw))}`",
                             str(exc)).replace("`action.`", "`action`")
            raise self._unknown(f"action: not a known action ({text}); known: {', '.join(self.tags)}",
                                "action") from None

    def execute(self, ctx: Context, action: Any) -> None:
        """Run an action's handler."""
        self.handlers[type(action)](ctx, action)
