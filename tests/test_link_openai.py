"""The local server driven by the openai package's own realtime client (offline, loopback)."""

from __future__ import annotations

import asyncio
import base64

import pytest
from test_link_support import turn

from device.dev.server import RealtimeServer

openai = pytest.importorskip("openai")


def test_openai_realtime_client_gets_a_parrot_turn() -> None:
    x = turn()

    async def main() -> None:
        server = RealtimeServer()
        port = await server.start()
        client = openai.AsyncOpenAI(api_key="x", websocket_base_url=f"ws://127.0.0.1:{port}/v1")
        types: list[str] = []
        audio = bytearray()
        try:
            async with client.realtime.connect(model="gpt-realtime") as conn:
                await conn.session.update(session={
                    "type": "realtime", "output_modalities": ["audio"],
                    "audio": {"input": {"format": {"type": "audio/pcm", "rate": 24000},
                                        "turn_detection": {"type": "server_vad", "silence_duration_ms": 500}}},
                })
                for i in range(0, len(x), 2400):
                    await conn.input_audio_buffer.append(audio=base64.b64encode(x[i:i + 2400].tobytes()).decode())

                async def receive() -> None:
                    async for event in conn:
                        types.append(event.type)
                        if event.type == "response.output_audio.delta":
                            audio.extend(base64.b64decode(event.delta))
                        if event.type == "response.done":
                            assert event.response.status == "completed"
                            return

                await asyncio.wait_for(receive(), 20)
        finally:
            await server.stop()
        assert types[:2] == ["session.created", "session.updated"]
        for t in ("input_audio_buffer.speech_started", "input_audio_buffer.speech_stopped",
                  "input_audio_buffer.committed", "response.created", "response.output_audio.delta"):
            assert t in types
        speech_ms = len(x) / 24 - 500 - 1200
        assert abs(len(audio) / 48 - (speech_ms + 300)) < 400

    asyncio.run(main())
