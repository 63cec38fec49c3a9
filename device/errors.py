"""Error types that map to the command line's exit codes.

ConfigError and UsageError exit 2 (bad usage or config); VoxboxError exits 1
(runtime failure). Each carries one clear line meant for a human.
"""


class VoxboxError(Exception):
    """A runtime failure: one clear line, exit code 1."""

    exit_code = 1


class ConfigError(VoxboxError):
    """Bad configuration or usage: exit code 2."""

    exit_code = 2


class AudioFileError(ConfigError):
    """A WAV file that cannot be read as audio (bad input from the user)."""


class ModelError(ConfigError):
    """A model that is missing, corrupt, or does not match its manifest."""
