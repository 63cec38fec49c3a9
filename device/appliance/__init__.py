"""The appliance: what a smart speaker does besides talking.

Pure cores, tested without I/O; the agent (device/conversation/agent.py) wires them in.

- tools.py: the function tools the model may call (`session.tools` entries in the GA Realtime
  shape, argument validation against their JSON schema, dispatch). In: a tool name and its
  arguments (JSON text, from `response.function_call_arguments.done`). Out: a ToolResult whose
  `output` is the JSON text for `conversation.item.create {type: function_call_output}`.
- timers.py: timers and alarms on a clock passed in (seconds; the mic sample clock), due times
  kept in wall-clock terms so they survive a restart; ringing with a maximum ring time.
  In: set/cancel/stop calls and `due(t)` polls. Out: Timer records and TimerEvents to log.
- volume.py: the volume level (0-100) as a software gain for the player, an optional ALSA mixer
  behind a small seam, ducking while the user talks. In: levels and steps. Out: gains.
- earcons.py: the short sounds (sounds/*.wav, made by scripts/make_earcons.sh) as PCM16 at the
  player's rate, scaled to the configured level.
- state.py: small JSON state files (atomic write, corrupt file -> one line and a reset).
"""
