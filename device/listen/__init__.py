"""On-device listening: TFLite interpreter shim, openWakeWord wake words, VAD, file commands."""
