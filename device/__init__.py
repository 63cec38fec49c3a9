"""voxbox: a smart-speaker daemon talking the OpenAI Realtime protocol."""

__version__ = "0.1.0"
