"""The local server's pure parts, without sockets: the conversation's rules and errors
(as the OpenAI Realtime service gives them), usage, the parrot/scripted model, script files."""

from __future__ import annotations

import base64
import json
import wave
from pathlib import Path

import numpy as np
import pytest

from device.dev.server_config import ClientError, check_event, default_session, merge_session
from device.dev.server_conversation import (
    Conversation,
    assistant_item,
    parse_client_item,
    parse_metadata,
    user_audio_item,
)
from device.dev.server_model import CallTool, ScriptedModel, ScriptTurn, Speak, load_script, tone
from device.errors import ConfigError

MS = 48  # bytes per ms of 24 kHz PCM16


def _code(fn, *args) -> str | None:
    with pytest.raises(ClientError) as exc:
        fn(*args)
    return exc.value.code


def test_response_rules() -> None:
    conv = Conversation()
    assert _code(conv.check_cancel, None) == "response_cancel_not_active"
    conv.begin_response("resp_1")
    assert _code(conv.begin_response, "resp_2") == "conversation_already_has_active_response"
    assert _code(conv.check_cancel, "resp_other") == "response_cancel_not_active"
    assert conv.check_cancel(None) == conv.check_cancel("resp_1") == "resp_1"
    conv.end_response("resp_1")
    assert _code(conv.check_cancel, None) == "response_cancel_not_active"
    conv.begin_response("resp_2")  # allowed again once the first is done


def test_truncate_rules() -> None:
    conv = Conversation()
    user = user_audio_item("item_u", b"\x01\x00" * 24000)
    reply = assistant_item("item_a")
    reply.audio = b"\x00" * (1500 * MS)
    conv.add(user)
    conv.add(reply)
    assert _code(conv.truncate, "item_nope", 0, 10) == "item_truncate_invalid_item_id"
    with pytest.raises(ClientError) as exc:
        conv.truncate("item_a", 0, 1501)
    assert (exc.value.code, exc.value.param) == ("invalid_value", "audio_end_ms")
    assert "1500ms is already shorter than 1501ms" in str(exc.value)
    assert _code(conv.truncate, "item_a", 1, 10) == "invalid_value"
    assert _code(conv.truncate, "item_u", 0, 10) == "invalid_value"  # only assistant audio
    conv.truncate("item_a", 0, 1500)  # exactly all of it is fine
    conv.truncate("item_a", 0, 600)
    assert reply.audio_ms == 600
    assert _code(conv.truncate, "item_a", 0, 601) == "invalid_value"  # the cut audio is gone


def test_items_insert_retrieve_delete() -> None:
    conv = Conversation()
    a = parse_client_item({"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]})
    assert conv.add(a) is None
    b = parse_client_item({"type": "message", "role": "system", "id": "sys_1",
                           "content": [{"type": "input_text", "text": "be brief"}]})
    assert conv.add(b, "root") is None
    assert [i.id for i in conv.items()] == ["sys_1", a.id] and conv.previous_of(a.id) == "sys_1"
    c = parse_client_item({"type": "function_call_output", "call_id": "call_1", "output": "{}"})
    assert conv.add(c, "sys_1") == "sys_1"
    assert [i.id for i in conv.items()] == ["sys_1", c.id, a.id]
    with pytest.raises(ClientError) as exc:
        conv.add(parse_client_item({"type": "function_call_output", "call_id": "c", "output": ""}), "item_gone")
    assert (exc.value.code, exc.value.param) == ("item_create_invalid_previous_item_id", "previous_item_id")
    assert _code(conv.add, b) == "invalid_value"  # the same id twice
    assert conv.get(a.id) is a
    assert _code(conv.get, "item_x", "retrieve") == "item_retrieve_invalid_item_id"
    conv.delete(c.id)
    assert _code(conv.delete, c.id) == "item_delete_invalid_item_id"
    assert [i.id for i in conv.items()] == ["sys_1", a.id]


def test_client_items_are_checked_and_audio_is_kept_apart() -> None:
    pcm = (np.arange(2400) % 200).astype("<i2").tobytes()
    item = parse_client_item({"type": "message", "role": "user",
                              "content": [{"type": "input_audio", "audio": base64.b64encode(pcm).decode()}]})
    assert item.audio == pcm and item.audio_ms == 100
    assert "audio" not in json.dumps(item.rendered()).replace("input_audio", "")  # added/done carry no audio
    assert base64.b64decode(item.rendered(with_audio=True)["content"][0]["audio"]) == pcm  # retrieved does
    bad = [{}, {"type": "message", "role": "tool", "content": []},
           {"type": "message", "role": "user", "content": []},
           {"type": "message", "role": "user", "content": [{"type": "input_audio", "audio": "%%"}]},
           {"type": "message", "role": "assistant", "content": [{"type": "output_audio", "audio": "AAAA"}]},
           {"type": "message", "role": "user", "content": [{"type": "input_text", "text": 5}]},
           {"type": "function_call_output", "call_id": "c"}, {"type": "function_call", "name": "f"},
           {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "x"}], "id": 7}]
    for raw in bad:
        with pytest.raises(ClientError):
            parse_client_item(raw)


def test_metadata_and_event_checks() -> None:
    assert parse_metadata({"turn": "7"}) == {"turn": "7"} and parse_metadata(None) is None
    for bad in ({"n": 7}, ["x"], {str(k): "v" for k in range(17)}, {"k": "v" * 513}):
        assert _code(parse_metadata, bad) == "invalid_value"
    assert check_event({"type": "conversation.item.retrieve", "item_id": "i", "event_id": "e1"}) == (
        "conversation.item.retrieve", "e1")
    assert _code(check_event, {"type": "conversation.item.delete"}) == "missing_required_parameter"
    assert _code(check_event, {"type": "output_audio_buffer.clear"}) == "unsupported"


def test_session_expiry_and_fixed_fields() -> None:
    s = default_session(1000.2, 90.0)
    assert s["expires_at"] == 1091
    merge_session(s, {"expires_at": 5, "id": "x", "instructions": "hi"})
    assert s["expires_at"] == 1091 and s["id"] != "x" and s["instructions"] == "hi"


def test_usage_counts_context_in_and_the_reply_out() -> None:
    conv = Conversation()
    conv.add(user_audio_item("u1", b"\x00" * (1000 * MS)))  # 10 audio tokens in
    conv.add(parse_client_item({"type": "message", "role": "user",
                                "content": [{"type": "input_text", "text": "x" * 40}]}))  # 10 text tokens
    reply = assistant_item("a1")
    reply.audio = b"\x00" * (500 * MS)  # 10 audio tokens out
    reply.data["content"] = [{"type": "output_audio", "transcript": "y" * 8}]  # 2 text tokens out
    conv.add(reply)
    u = conv.usage("z" * 20, [reply], before="a1")  # instructions: 5 text tokens
    assert u["input_token_details"]["audio_tokens"] == 10 and u["input_token_details"]["text_tokens"] == 15
    assert u["output_token_details"] == {"text_tokens": 2, "audio_tokens": 10}
    assert (u["input_tokens"], u["output_tokens"], u["total_tokens"]) == (25, 12, 37)


def _user(conv: Conversation, audio: bytes, echo: bytes | None = None) -> str:
    item = user_audio_item(f"u{len(conv.items())}", audio, echo)
    conv.add(item)
    return item.id


def _output(conv: Conversation, call_id: str) -> None:
    conv.add(parse_client_item({"type": "function_call_output", "call_id": call_id, "output": "{\"ok\":true}"}))


def test_parrot_answers_the_latest_user_turn() -> None:
    conv = Conversation()
    model = ScriptedModel()
    assert model.next(conv) == Speak(b"", "")
    _user(conv, b"\x01\x00" * 100, echo=b"\x01\x00" * 50)
    assert model.next(conv) == Speak(b"\x01\x00" * 50, "")  # the speech, not the trailing silence
    conv.add(parse_client_item({"type": "message", "role": "user",
                                "content": [{"type": "input_text", "text": "what time is it"}]}))
    said = model.next(conv)
    assert isinstance(said, Speak) and said.transcript == "what time is it" and said.audio == tone("what time is it")
    x = np.frombuffer(said.audio, "<i2")
    assert 500 <= len(x) / 24 <= 700 and 2500 < np.abs(x).max() < 3400  # ~600 ms at -20 dBFS


def test_script_calls_a_tool_then_speaks() -> None:
    conv = Conversation()
    wav = b"\x02\x00" * 240
    model = ScriptedModel([ScriptTurn("Timer set.", "set_timer", '{"seconds":3}', wav), ScriptTurn("Second.")])
    _user(conv, b"\x01\x00" * 100)
    call = model.next(conv)
    assert isinstance(call, CallTool) and (call.name, call.arguments) == ("set_timer", '{"seconds":3}')
    # response.create before the output: the model has nothing new to say but the parrot
    assert model.next(conv) == Speak(b"\x01\x00" * 100, "")
    _output(conv, "call_other")
    assert model.next(conv) == Speak(b"\x01\x00" * 100, "")  # another call's output is not this one's
    _output(conv, call.call_id)
    assert model.next(conv) == Speak(wav, "Timer set.")
    _user(conv, b"\x03\x00" * 100)
    assert model.next(conv) == Speak(b"\x03\x00" * 100, "Second.")  # no audio in the script: the parrot's
    _user(conv, b"\x04\x00" * 100)
    assert model.next(conv) == Speak(b"\x04\x00" * 100, "")  # beyond the script: the parrot


def test_a_new_user_turn_supersedes_an_unanswered_call() -> None:
    conv = Conversation()
    model = ScriptedModel([ScriptTurn("A", "f", "{}"), ScriptTurn("B")])
    _user(conv, b"\x01\x00" * 10)
    call = model.next(conv)
    assert isinstance(call, CallTool)
    _user(conv, b"\x02\x00" * 10)
    _output(conv, call.call_id)  # late, after the user moved on
    assert model.next(conv) == Speak(b"\x02\x00" * 10, "B")


def _wav(path: Path, rate: int, x: np.ndarray, channels: int = 1) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(x.astype("<i2").tobytes())


def test_load_script_toml_and_json(tmp_path: Path) -> None:
    _wav(tmp_path / "say.wav", 16000, np.tile(np.array([1000, -1000], np.int16), 8000), channels=2)  # 0.5 s stereo
    (tmp_path / "s.toml").write_text('[[turns]]\ncall = {name = "set_timer", arguments = {seconds = 3}}\n'
                                     'say = "Timer set."\naudio = "say.wav"\n\n[[turns]]\nsay = "Bye."\n')
    turns = load_script(tmp_path / "s.toml")
    assert [t.say for t in turns] == ["Timer set.", "Bye."]
    assert turns[0].call_name == "set_timer" and json.loads(turns[0].call_arguments) == {"seconds": 3}
    assert turns[0].audio is not None and abs(len(turns[0].audio) / MS - 500) <= 5  # resampled to 24 kHz
    assert turns[1].call_name is None and turns[1].audio is None
    (tmp_path / "s.json").write_text(json.dumps({"turns": [{"call": {"name": "f", "arguments": "{\"a\": 1}"}}]}))
    assert load_script(tmp_path / "s.json")[0].call_arguments == '{"a": 1}'


@pytest.mark.parametrize("text", ["", "turns = 3", "[[turns]]\nsay = 5", "[[turns]]\ncall = {arguments = {}}",
                                  "[[turns]]\nsing = 'x'", "[[turns]]\naudio = 'missing.wav'", "[[turns"])
def test_bad_scripts_are_one_clear_config_error(tmp_path: Path, text: str) -> None:
    p = tmp_path / "bad.toml"
    p.write_text(text)
    with pytest.raises(ConfigError) as exc:
        load_script(p)
    assert "\n" not in str(exc.value) and str(p) in str(exc.value)
