"""voxbox: a smart-speaker daemon talking the OpenAI Realtime protocol (and GPT-Live).

The daemon's data path, one folder a stage (docs/ARCHITECTURE.md has the picture):

    audio/         mic blocks in (any rate, N channels) -> 10 ms int16 frames at 16 kHz (AEC'd);
                   reply PCM in -> speaker out, counting every sample played
    listen/        16 kHz frames in -> wake detections, VAD speech start/end, barge-in suspicions
    conversation/  detector and server events in -> actions out (machine.py, pure);
                   agent.py carries the actions out (the one owner of sound card, socket, LEDs);
                   speaking.py: barge-in while the device speaks
    link/          client events and uplink audio in -> WebSocket; server events out (Link seam;
                   OpenAI Realtime and GPT-Live, each a protocol core, a client and a dialect)
    gpio/          patterns in -> LEDs; button presses out
    appliance/     the model's function calls in -> tool results out; timers, volume, earcons
    service/       the daemon's life: `voxbox run`, `check`, hardware profiles, systemd notify
    config.py      TOML + environment + command line -> one validated, immutable Settings

Developer tools live apart: dev/ (simulate, demo, the local server, timeline view) and
bench/ (`voxbox bench` sections).
"""

__version__ = "0.1.0"
