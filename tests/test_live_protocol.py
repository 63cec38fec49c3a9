"""device.link.live_protocol: every built event and every parsed one against openai.types.live."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from live_support import check_live_client_event, check_live_server_event

from device.link import live_protocol as lp
from device.link.live_protocol import HistoryItem, ProtocolError, parse_server_event

SESSION = {"id": "sess_1", "expires_at": 1_900_000_000, "model": "gpt-live-1", "status": "active"}


def test_session_start_shape_and_history() -> None:
    history = [HistoryItem("user", "what time is it"), HistoryItem("assistant", "ten past four"),
               HistoryItem("user", "  ")]
    ev = lp.session_start("gpt-live-1", "be brief", "cedar", history=history)
    model = check_live_client_event(ev)
    s = ev["session"]
    assert s["model"] == "gpt-live-1" and s["instructions"] == "be brief"
    assert s["audio"] == {"format": {"type": "audio/pcm", "rate": 24000}, "output": {"voice": "cedar"}}
    assert "delegation" not in s  # omitted: the application handles delegated work
    assert [(m["role"], m["content"][0]["type"], m["content"][0]["text"]) for m in s["input"]] == [
        ("user", "input_text", "what time is it"), ("assistant", "output_text", "ten past four")]
    assert model.session.input[1].content[0].text == "ten past four"


def test_session_start_minimal_and_limits() -> None:
    ev = lp.session_start("gpt-live-1.1", rate=16000)
    check_live_client_event(ev)
    assert ev["session"] == {"model": "gpt-live-1.1", "audio": {"format": {"type": "audio/pcm", "rate": 16000}}}
    long = [HistoryItem("user", f"line {i}") for i in range(200)]
    kept = lp.session_start("gpt-live-1", history=long)["session"]["input"]
    assert len(kept) == lp.MAX_HISTORY and kept[-1]["content"][0]["text"] == "line 199"
    with pytest.raises(ValueError):
        lp.session_start("gpt-live-1", rate=44100)
    with pytest.raises(ValueError):
        lp.history_message(HistoryItem("system", "x"))


def test_session_start_with_delegation_validates() -> None:
    check_live_client_event(lp.session_start("gpt-live-1", delegation={"type": "client"}))


def test_every_builder_validates_with_unique_ids() -> None:
    events = [lp.input_audio_append(b"\x01\x00" * 240), lp.input_audio_mute(), lp.input_audio_unmute(),
              lp.session_close(), lp.response_create(),
              lp.response_item_create({"type": "message", "role": "user",
                                       "content": [{"type": "input_text", "text": "set a timer"}]}),
              lp.function_call_output("call_1", '{"ok": true}'), lp.session_start("gpt-live-1")]
    for ev in events:
        check_live_client_event(ev)
        check_live_client_event(json.loads(json.dumps(ev)))
    assert len({ev["event_id"] for ev in events}) == len(events)
    assert [e["type"] for e in events[:4]] == ["session.input_audio.append", "session.input_audio.mute",
                                               "session.input_audio.unmute", "session.close"]


@given(st.binary(max_size=4000).map(lambda b: b[: len(b) & ~1]))
@settings(max_examples=40)
def test_append_roundtrip(pcm: bytes) -> None:
    assert base64.b64decode(lp.input_audio_append(pcm)["audio"]) == pcm


def _server_events() -> list[dict[str, Any]]:
    pcm = base64.b64encode(b"\x10\x00" * 480).decode()
    return [
        {"type": "session.started", "event_id": "e1", "session": SESSION, "client_event_id": None},
        {"type": "session.output_audio.delta", "delta": pcm},
        {"type": "session.input_transcript.delta", "event_id": "e2", "delta": "hello", "start_ms": 120,
         "end_ms": 480},
        {"type": "session.output_transcript.delta", "event_id": "e3", "delta": "hi", "start_ms": 900,
         "end_ms": 900, "client_event_id": None},
        {"type": "session.input_audio.muted", "event_id": "e4", "client_event_id": "evt_9"},
        {"type": "session.input_audio.unmuted", "event_id": "e5"},
        {"type": "session.closed", "event_id": "e6", "reason": "expired", "session": SESSION,
         "usage": {"seconds": 61.0, "active_seconds": None, "paused_seconds": None}},
        {"type": "error", "event_id": "e7", "error": {"code": "unknown_parameter", "message": "bad",
                                                      "type": "invalid_request_error", "param": None,
                                                      "client_event_id": None}},
        {"type": "session.usage.updated", "event_id": "e8", "usage": {"seconds": 3.0}},
        {"type": "session.delegation.created", "event_id": "e9", "offset_ms": 1200,
         "delegation": {"id": "del_1", "target": "client", "type": "delegation"}},
        {"type": "response.event", "event_id": "e10", "delegation_id": None,
         "event": {"type": "response.function_call_arguments.done", "item_id": "fc_1", "output_index": 0,
                   "arguments": "{}", "sequence_number": 0}},  # a whole Responses event (it is checked too)
    ]


@pytest.mark.parametrize("ev", _server_events(), ids=lambda e: e["type"])
def test_parse_valid_server_events(ev: dict[str, Any]) -> None:
    check_live_server_event(ev)  # the fixture itself is what openai.types.live accepts
    parsed = parse_server_event(json.dumps(ev))
    assert parsed.type == ev["type"] and parsed.known and parsed.data == ev


def test_typed_records() -> None:
    evs = [parse_server_event(json.dumps(e)) for e in _server_events()]
    started, audio, heard, said, muted, unmuted, closed, err = evs[:8]
    assert isinstance(started, lp.SessionStarted)
    assert (started.session_id, started.expires_at, started.model) == ("sess_1", 1_900_000_000, "gpt-live-1")
    assert isinstance(audio, lp.OutputAudio) and audio.pcm == b"\x10\x00" * 480
    assert isinstance(heard, lp.Transcript) and (heard.role, heard.delta, heard.start_ms, heard.end_ms) == (
        "user", "hello", 120, 480)
    assert isinstance(said, lp.Transcript) and said.role == "assistant"
    assert isinstance(muted, lp.MuteAck) and muted.muted and isinstance(unmuted, lp.MuteAck) and not unmuted.muted
    assert isinstance(closed, lp.SessionClosed) and (closed.reason, closed.usage_s) == ("expired", 61.0)
    assert isinstance(err, lp.LiveError) and err.line() == "invalid_request_error: unknown_parameter: bad"
    assert err.param == "" and err.client_event_id == ""
    assert all(isinstance(e, lp.Other) for e in evs[8:])


def test_unknown_type_is_kept_not_refused() -> None:
    ev = parse_server_event('{"type": "session.something_new", "x": 1}')
    assert isinstance(ev, lp.Other) and not ev.known


def test_server_event_type_list_matches_openai() -> None:
    from typing import get_args

    from openai.types.live import ServerEvent
    union = get_args(get_args(ServerEvent)[0])
    names = {get_args(m.model_fields["type"].annotation)[0] for m in union}
    assert names == lp.SERVER_EVENT_TYPES


@pytest.mark.parametrize("text,fragment", [
    ("not json", "malformed JSON"),
    ("[1]", "not an object"),
    ('{"event_id": "x"}', "type"),
    ('{"type": "session.started", "event_id": "e"}', "'session'"),
    ('{"type": "session.started", "session": {"id": 5, "expires_at": 1}}', "'id'"),
    ('{"type": "session.output_audio.delta", "delta": "%%%"}', "base64"),
    ('{"type": "session.output_audio.delta", "delta": "AAAA"}', "16-bit"),
    ('{"type": "session.input_transcript.delta", "delta": "a", "start_ms": 5}', "'end_ms'"),
    ('{"type": "session.input_transcript.delta", "delta": "a", "start_ms": 5, "end_ms": 2}', "before"),
    ('{"type": "session.output_transcript.delta", "delta": 3, "start_ms": 1, "end_ms": 2}', "'delta'"),
    ('{"type": "session.input_transcript.delta", "delta": "a", "start_ms": true, "end_ms": 2}', "'start_ms'"),
    ('{"type": "session.closed", "event_id": "e"}', "'reason'"),
    ('{"type": "session.closed", "reason": "expired", "usage": {"seconds": "x"}}', "'seconds'"),
    ('{"type": "error", "error": "boom"}', "'error'"),
    ('{"type": "error", "event_id": 7, "error": {}}', "'event_id'"),
])
def test_malformed_server_events(text: str, fragment: str) -> None:
    with pytest.raises(ProtocolError) as info:
        parse_server_event(text)
    assert fragment in str(info.value) and "\n" not in str(info.value)


def test_nulls_in_optional_fields_are_accepted() -> None:
    ev = parse_server_event('{"type": "session.closed", "reason": "close_requested", "usage": null,'
                            ' "event_id": null, "client_event_id": null}')
    assert isinstance(ev, lp.SessionClosed) and ev.usage_s is None
    err = parse_server_event('{"type": "error", "error": {"code": null, "message": null, "type": null}}')
    assert isinstance(err, lp.LiveError) and err.line() == "error: (no message)"
