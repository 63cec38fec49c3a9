"""Sound in and out.

In: mic blocks from an `AudioPort` (PyAudio, or the simulated twin `sim.SimAudio`), int16,
any rate and channel count. `frontend.Frontend` maps channels, resamples (soxr) and runs the
echo canceller (`aec`, WebRTC AEC3 through livekit) against what the speaker really played.
Out: 10 ms int16 mono frames at 16 kHz for the detectors, 24 kHz PCM16 chunks for the uplink
(`frontend.Uplink`), after `res.ResidualEchoSuppressor` took out, band by band, the echo the
canceller left (predicted from `echogate.EchoGate`'s reference envelope).
`player.Player` takes the reply's PCM16 and counts every sample played.
"""
