"""The conversation: what the device does with what it hears.

`machine.Conversation` is pure: events in (wake, speech start/end, server turn and response
events, button, ticks), actions out (open/close the uplink, play, pause, stop, send a commit,
cancel or truncate). `agent.Agent` owns the I/O: it feeds mic blocks through the frontend and
detectors, turns server events from its `Link` into machine events, and carries out the
machine's actions on the player, the link and the indicator. While the device speaks,
`speaking.BargeIn` decides per mic frame whether the user is barging in (pause, confirm, the
uplink's gate) and hands its decisions to the agent.
"""
