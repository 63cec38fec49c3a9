"""`voxbox bench`: one module a section (`run(quick) -> dict`, `format_table(dict) -> str`).

`report.run_bench` runs the sections and writes the report: listen (wake word and VAD),
barge_in (echo and interruptions), link (the WebSocket path), daemon (CPU and memory).
"""
