"""The link to the realtime model.

In: client events (dicts) and uplink audio (PCM16 mono 24 kHz bytes) from the agent.
Out: parsed server events, connect/disconnect and error callbacks to the agent.
`base.Link` is the seam the agent is written against; `protocol` is the pure OpenAI Realtime
core (build client events, parse server events); `client.RealtimeClient` is the WebSocket
implementation; `twin.RecordingLink` is the in-memory twin for tests and benches.
"""
