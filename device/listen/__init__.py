"""On-device listening: TFLite interpreter shim, wake words, VAD, barge-in detectors.

In: 10 ms int16 mono frames at 16 kHz (the frontend's output; echo-cancelled while the
device speaks). Out: `WakeDetection`s (wakeword, microwakeword), `VadEvent`s (vad), and the
barge-in suspicions and double-talk decisions (bargein). `commands` runs the same engines on
files for `voxbox detect` / `voxbox vad`.
"""
