"""Developer tools, not on the daemon's path.

`simulate` runs the whole agent on file audio (`voxbox simulate`, `voxbox demo`),
`server` is the local realtime server (`voxbox serve`, a parrot model) with its VAD in
`server_vad`, `timeline_view` prints and plots a timeline, `demo_report` measures a demo run.
"""
