"""Developer tools, not on the daemon's path.

`simulate` runs the whole agent on file audio (`voxbox simulate`, `voxbox demo`),
`server` is the local realtime server (`voxbox serve`, a parrot model, optionally scripted)
with its parts in `server_config` (session shape, event checks), `server_conversation`
(items, responses and the service's errors; pure), `server_model` (parrot and script; pure),
`server_connection` (one client) and `server_vad` (turn detection); `timeline_view` prints
and plots a timeline, `demo_report` measures a demo run.
"""
