"""The daemon's life on a device.

`run` builds the real parts (PyAudio, gpiozero, the link) for `voxbox run` and runs the agent;
`systemd` speaks sd_notify (READY, WATCHDOG, STATUS) and handles signals; `hw` layers a
hardware profile under the config file; `check` validates config, models, devices and the
server for `voxbox check`.
"""
