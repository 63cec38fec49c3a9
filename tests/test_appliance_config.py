"""The appliance's settings ([tools], [[tools.mcp]], [sounds], [volume], [privacy], transcription, noise
reduction) and what they put into session.update (validated against the openai types)."""

from __future__ import annotations

import dataclasses

import pytest
from test_link_support import check_client_event

from device import config as cfg
from device.appliance.tools import session_tools
from device.errors import ConfigError
from device.link import protocol

TOML = '''
[tools]
enabled = ["set_timer", "stop"]
timer_max_s = 600
ring_max_s = 60

[[tools.mcp]]
label = "home"
server_url = "https://ha.local/mcp_server/sse"
allowed_tools = ["HassTurnOn", "HassTurnOff"]
authorization_env = "HA_TOKEN"

[sounds]
wake = false
level = 0.3

[volume]
level = 40
mixer = "Speaker"

[privacy]
transcripts_in_journal = true

[realtime]
transcription_model = "gpt-4o-transcribe"
transcription_language = "de"
noise_reduction = "near_field"
'''


def test_settings_load_from_toml_and_env(tmp_path):
    p = tmp_path / "voxbox.toml"
    p.write_text(TOML)
    s = cfg.load(p, env={"VOXBOX_VOLUME_STEP": "5", "VOXBOX_SOUNDS_TIMER": "off"})
    assert s.tools.enabled == ["set_timer", "stop"] and s.tools.ring_max_s == 60.0
    (m,) = s.tools.mcp
    assert (m.label, m.allowed_tools, m.authorization_env, m.require_approval) == (
        "home", ["HassTurnOn", "HassTurnOff"], "HA_TOKEN", "never")
    assert (s.sounds.wake, s.sounds.timer, s.sounds.level) == (False, False, 0.3)
    assert (s.volume.level, s.volume.mixer, s.volume.step) == (40, "Speaker", 5)
    assert s.privacy.transcripts_in_journal is True


def test_defaults_are_a_smart_speaker():
    s = cfg.Settings()
    assert s.tools.enabled == list(cfg.TOOL_NAMES) and s.tools.ring_max_s == 900.0
    assert s.realtime.noise_reduction == "far_field"
    assert s.privacy.transcripts_in_journal is False


@pytest.mark.parametrize("text,needle", [
    ('[tools]\nenabled = ["set_timer", "launch_rocket"]', "tools.enabled: unknown tool 'launch_rocket'"),
    ("[tools]\nring_max_s = 0", "tools.ring_max_s"),
    ("[volume]\nlevel = 101", "volume.level"),
    ("[sounds]\nlevel = 2", "sounds.level"),
    ('[realtime]\nnoise_reduction = "studio"', "realtime.noise_reduction"),
    ('[[tools.mcp]]\nlabel = "x"\nserver_url = "ftp://x"', "tools.mcp[0]"),
    ('[[tools.mcp]]\nlabel = "x"\nserver_url = "https://x"\nrequire_approval = "maybe"', "require_approval"),
    ('[[tools.mcp]]\nlabel = "x"\nserver_url = "https://x"\nauthorization = "tok"', "tools.mcp[0].authorization"),
    ('[tools]\nmcp = "x"', "tools.mcp"),
    ('[tools]\ndelegation_model = " "', "tools.delegation_model"),
])
def test_bad_settings_give_one_clear_line(tmp_path, text, needle):
    p = tmp_path / "voxbox.toml"
    p.write_text(text)
    with pytest.raises(ConfigError) as err:
        cfg.load(p, env={})
    assert needle in str(err.value) and "\n" not in str(err.value)
    assert "tok" not in str(err.value).replace("tools", "")  # an inline token is not echoed back


def test_session_update_carries_tools_transcription_and_noise_reduction(tmp_path):
    p = tmp_path / "voxbox.toml"
    p.write_text(TOML)
    s = cfg.load(p, env={})
    ev = protocol.session_update(s.realtime, tools=session_tools(s.tools, env={"HA_TOKEN": "t0k"}),
                                 tool_choice=s.tools.tool_choice)
    check_client_event(ev)  # strict against openai.types.realtime's client events
    inp = ev["session"]["audio"]["input"]
    assert inp["transcription"] == {"model": "gpt-4o-transcribe", "language": "de"}
    assert inp["noise_reduction"] == {"type": "near_field"}
    tools = ev["session"]["tools"]
    assert [t.get("name", t["type"]) for t in tools] == ["set_timer", "stop", "mcp"]
    assert tools[-1]["authorization"] == "t0k" and ev["session"]["tool_choice"] == "auto"


def test_transcription_and_noise_reduction_can_be_off():
    rt = cfg.RealtimeSettings(transcription_model="", noise_reduction="off")
    ev = protocol.session_update(rt)
    check_client_event(ev)
    assert "transcription" not in ev["session"]["audio"]["input"]
    assert ev["session"]["audio"]["input"]["noise_reduction"] is None
    assert "tools" not in ev["session"]


def test_function_call_output_is_a_client_event():
    ev = protocol.function_call_output("call_1", '{"ok":true}')
    check_client_event(ev)
    assert ev["item"] == {"type": "function_call_output", "call_id": "call_1", "output": '{"ok":true}'}


def test_check_names_a_missing_mcp_token_and_a_missing_mixer(monkeypatch):
    from device.errors import VoxboxError
    from device.service.check import check_appliance

    s = cfg.Settings()
    assert "set_timer" in check_appliance(s) and "timer" in check_appliance(s)
    mcp = [cfg.McpServerSettings(label="home", server_url="https://x/mcp", authorization_env="HA_TOKEN_X")]
    s = dataclasses.replace(s, tools=cfg.ToolsSettings(mcp=mcp))
    monkeypatch.delenv("HA_TOKEN_X", raising=False)
    with pytest.raises(VoxboxError, match="HA_TOKEN_X is not set"):
        check_appliance(s)
    monkeypatch.setenv("HA_TOKEN_X", "s3cret")
    assert "MCP: home" in check_appliance(s) and "s3cret" not in check_appliance(s)
    s = dataclasses.replace(s, volume=cfg.VolumeSettings(mixer="NoSuchControl"))
    with pytest.raises(VoxboxError, match="volume.mixer 'NoSuchControl'"):
        check_appliance(s)
