"""`voxbox bench` link section, quick mode: the numbers exist and the hard goals hold."""

from __future__ import annotations

import math

from device.bench import link as bench_link


def test_link_bench_quick() -> None:
    r = bench_link.run(quick=True)
    up, quiet, rs = r["uplink"], r["quiet"], r["restart"]
    # base64 PCM16 at 24 kHz is 64 000 B/s; the JSON envelope adds a little
    assert 64_000 <= up["uplink_bytes_per_s"] <= 66_000
    assert up["reply_s"] == up["audio_s"] and up["cpu_s_per_audio_s_up"] > 0 and up["cpu_s_per_audio_s_down"] > 0
    assert quiet["idle"]["connected"] and quiet["idle"]["bytes"] == 0 and quiet["idle"]["wake"] == 0
    assert quiet["muted_run"]["muted"] and quiet["muted_run"]["bytes"] == 0
    assert quiet["idle"]["client_uplink_bytes"] == 0 and quiet["muted_run"]["client_uplink_bytes"] == 0
    assert rs["survived"] == rs["restarts"] == 3 and not math.isnan(rs["reconnect_median_s"])
    table = bench_link.format_table(r)
    assert table.startswith("link") and "reconnect median" in table and "bytes sent while idle" in table
    # the 0-byte and survival goals must hold; timing is judged by the full bench, not here
    assert not [line for line in table.splitlines() if "MISSED" in line and "reconnect" not in line
                and "tool round trip" not in line]
    # every scripted call ran and its round trip was measured, on both APIs
    assert [(t["api"], t["calls"], t["ok"], t["measured"]) for t in r["tools"]] == [
        ("realtime", 5, 5, 5), ("live", 5, 5, 5)]
    assert "tool round trip, Realtime" in table and "tool round trip, GPT-Live" in table
    assert bench_link.format_table({"error": "boom"}) == "link: boom"
