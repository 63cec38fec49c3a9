"""Shared helpers for the link tests: speech audio, schema validation, a traced local server."""

from __future__ import annotations

import asyncio
import io
import json
import shutil
import subprocess
import wave
from functools import lru_cache
from typing import Any

import numpy as np
import pytest
import soxr
from openai.types.realtime import RealtimeClientEvent, RealtimeServerEvent
from pydantic import TypeAdapter

from device.dev.server import RealtimeServer
from device.listen.wakeword import WakeDetection


class NoWake:
    """A wake detector that never fires: the test opens the conversation itself (cv.Wake)."""

    names: list[str] = []

    def process(self, pcm16: np.ndarray) -> list[WakeDetection]:
        return []

    def reset(self) -> None:
        pass


CLIENT_EVENT = TypeAdapter(RealtimeClientEvent)
SERVER_EVENT = TypeAdapter(RealtimeServerEvent)


def check_client_event(ev: dict[str, Any]) -> None:
    model = CLIENT_EVENT.validate_python(ev, strict=True)
    assert model.type == ev["type"]


def check_server_event(ev: dict[str, Any]) -> None:
    model = SERVER_EVENT.validate_python(ev, strict=True)
    assert model.type == ev["type"]


@lru_cache(maxsize=8)
def speech(text: str = "hello there, what is the weather like today") -> np.ndarray:
    """Speech from espeak-ng as int16 mono 24 kHz."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed")
    raw = subprocess.run(["espeak-ng", "--stdout", text], capture_output=True, check=True).stdout
    with wave.open(io.BytesIO(raw)) as w:
        x = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
        rate = w.getframerate()
    y = soxr.resample(x, rate, 24000).astype(np.int16)
    nz = np.flatnonzero(np.abs(y) > 300)  # trim espeak's own leading/trailing silence
    return y[nz[0]: nz[-1] + 1]


def turn(text: str = "hello there, what is the weather like today", lead_s: float = 0.5,
         tail_s: float = 1.2) -> np.ndarray:
    """Silence, speech, silence (24 kHz int16), with a little noise so it is not digital zero."""
    rng = np.random.default_rng(1)
    s = speech(text)
    x = np.concatenate([np.zeros(int(lead_s * 24000)), s.astype(np.float64), np.zeros(int(tail_s * 24000))])
    x += rng.normal(0, 20, len(x))
    return np.clip(x, -32768, 32767).astype(np.int16)


class TracedServer(RealtimeServer):
    """The local server, recording every message in both directions (parsed)."""

    def __init__(self, speed: float = 4.0, **kw: Any) -> None:
        self.inbound: list[Any] = []
        self.outbound: list[dict[str, Any]] = []
        super().__init__(speed=speed, trace=self._record, **kw)

    def _record(self, direction: str, text: str | bytes) -> None:
        if direction == "out":
            self.outbound.append(json.loads(text))
        else:
            try:
                self.inbound.append(json.loads(text))
            except ValueError:
                self.inbound.append(text)

    def received(self, type_: str) -> list[dict[str, Any]]:
        return [e for e in self.inbound if isinstance(e, dict) and e.get("type") == type_]


async def wait_for(pred, timeout: float = 10.0, step: float = 0.01) -> bool:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while loop.time() < end:
        if pred():
            return True
        await asyncio.sleep(step)
    return bool(pred())


def test_speech_fixture_is_speech_length() -> None:
    s = speech()
    assert 1.5 < len(s) / 24000 < 5.0
