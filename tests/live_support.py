"""Shared helpers for the GPT-Live tests: validation against `openai.types.live`."""

from __future__ import annotations

from typing import Any

from openai.types.live import ClientEvent, ServerEvent
from openai.types.responses import ResponseStreamEvent
from pydantic import BaseModel, TypeAdapter

CLIENT_EVENT = TypeAdapter(ClientEvent)
SERVER_EVENT = TypeAdapter(ServerEvent)
RESPONSES_EVENT = TypeAdapter(ResponseStreamEvent)


def _no_extras(model: Any, where: str) -> None:
    """The openai models allow unknown keys; a misspelt field must still fail the test."""
    if isinstance(model, BaseModel):
        assert not model.model_extra, f"{where}: fields unknown to openai.types.live: {sorted(model.model_extra)}"
        for name in type(model).model_fields:
            _no_extras(getattr(model, name), f"{where}.{name}")
    elif isinstance(model, list):
        for i, v in enumerate(model):
            _no_extras(v, f"{where}[{i}]")


def check_live_client_event(ev: dict[str, Any]) -> Any:
    """Validate a client event against openai.types.live.ClientEvent (strict, no unknown keys)."""
    model = CLIENT_EVENT.validate_python(ev, strict=True)
    assert model.type == ev["type"]
    _no_extras(model, ev["type"])
    return model


def check_live_server_event(ev: dict[str, Any]) -> Any:
    """Validate a server event against openai.types.live.ServerEvent (strict, no unknown keys); the
    Responses event nested in a `response.event` against openai.types.responses.ResponseStreamEvent."""
    model = SERVER_EVENT.validate_python(ev, strict=True)
    assert model.type == ev["type"]
    _no_extras(model, ev["type"])
    if ev["type"] == "response.event":
        inner = RESPONSES_EVENT.validate_python(ev["event"], strict=True)
        assert inner.type == ev["event"]["type"]
        _no_extras(inner, "response.event.event")
    return model
