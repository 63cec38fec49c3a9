"""device.link.protocol: builders in the GA shape, the parser, beta names, malformed input."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_link_support import check_client_event, check_server_event

from device.config import RealtimeSettings
from device.link import protocol
from device.link.protocol import ProtocolError, audio_delta, parse_server_event


@pytest.mark.parametrize("mode", ["server_vad", "semantic_vad", "none"])
@pytest.mark.parametrize("barge_in", ["local", "server", "both", "off"])
def test_session_update_shape(mode: str, barge_in: str) -> None:
    rt = RealtimeSettings(turn_detection=mode, idle_timeout_ms=0, instructions="be brief", voice="cedar")
    ev = protocol.session_update(rt, barge_in=barge_in)
    check_client_event(ev)
    s = ev["session"]
    assert s["type"] == "realtime" and s["output_modalities"] == ["audio"] and s["instructions"] == "be brief"
    assert s["audio"]["input"]["format"] == {"type": "audio/pcm", "rate": 24000}
    assert s["audio"]["output"] == {"format": {"type": "audio/pcm", "rate": 24000}, "voice": "cedar"}
    td = s["audio"]["input"]["turn_detection"]
    if mode == "none":
        assert td is None
        return
    assert td["type"] == mode and td["create_response"] is True
    assert td["interrupt_response"] is (barge_in in ("server", "both"))
    if mode == "server_vad":
        assert (td["threshold"], td["prefix_padding_ms"], td["silence_duration_ms"]) == (0.5, 300, 500)
        assert "idle_timeout_ms" not in td
    else:
        assert td["eagerness"] == "auto"


def test_idle_timeout_only_when_set() -> None:
    ev = protocol.session_update(RealtimeSettings(idle_timeout_ms=5000))
    assert ev["session"]["audio"]["input"]["turn_detection"]["idle_timeout_ms"] == 5000
    check_client_event(ev)


def test_builders_validate_and_ids_are_unique() -> None:
    events = [
        protocol.input_audio_append(b"\x01\x00" * 240), protocol.input_audio_commit(), protocol.input_audio_clear(),
        protocol.response_create(), protocol.response_cancel(), protocol.item_truncate("item_1", 1234),
        protocol.session_update(RealtimeSettings()),
    ]
    for ev in events:
        check_client_event(ev)
        check_client_event(json.loads(protocol.encode(ev)))
    assert len({ev["event_id"] for ev in events}) == len(events)
    tr = events[5]
    assert (tr["item_id"], tr["content_index"], tr["audio_end_ms"]) == ("item_1", 0, 1234)
    assert protocol.item_truncate("x", -5)["audio_end_ms"] == 0


@given(st.binary(max_size=4000).map(lambda b: b[: len(b) & ~1]))
@settings(max_examples=60)
def test_append_roundtrip(pcm: bytes) -> None:
    ev = protocol.input_audio_append(pcm)
    assert base64.b64decode(ev["audio"]) == pcm


@pytest.mark.parametrize("beta,ga", sorted(protocol.BETA_NAMES.items()))
def test_beta_names_normalised(beta: str, ga: str) -> None:
    ev = {"type": beta, "event_id": "e1", "response_id": "r", "item_id": "i", "output_index": 0, "content_index": 0}
    if beta.endswith(".delta"):
        ev["delta"] = base64.b64encode(b"\x00\x01" * 10).decode() if "audio." in beta else "hi"
    parsed = parse_server_event(json.dumps(ev))
    assert parsed.type == ga and parsed.data["type"] == ga
    check_server_event(parsed.data | ({"transcript": ""} if ga.endswith("transcript.done") else {})
                       | ({"text": ""} if ga.endswith("text.done") else {}))


def test_audio_delta_decodes_once() -> None:
    pcm = bytes(range(200))
    ev = parse_server_event(json.dumps({"type": "response.output_audio.delta", "item_id": "it", "response_id": "r",
                                        "delta": base64.b64encode(pcm).decode()}))
    assert audio_delta(ev) == ("it", pcm)
    with pytest.raises(ProtocolError):
        audio_delta(parse_server_event('{"type": "response.done", "response": {}}'))


@pytest.mark.parametrize("text", [
    "{not json", b"\xff\xfe", "[1, 2]", "42", "{}", '{"type": 3}', '{"type": ""}',
    '{"type": "input_audio_buffer.speech_started", "item_id": "i"}',  # missing audio_start_ms
    '{"type": "input_audio_buffer.speech_started", "item_id": "i", "audio_start_ms": "10"}',
    '{"type": "input_audio_buffer.speech_stopped", "item_id": "i", "audio_end_ms": true}',
    '{"type": "response.done", "response": []}',
    '{"type": "error", "error": "boom"}',
    '{"type": "response.output_audio.delta", "item_id": "i", "delta": "@@not base64@@"}',
    '{"type": "response.output_audio.delta", "item_id": "i", "delta": "AA=="}',  # one byte: not PCM16
    '{"type": "response.audio.delta", "item_id": 5, "delta": "AAAA"}',
    '{"type": "conversation.item.truncated", "item_id": "i", "content_index": 0, "audio_end_ms": 1.5}',
    '{"type": "session.created", "session": {}, "event_id": 7}',
])
def test_malformed_raises_protocol_error(text: str | bytes) -> None:
    with pytest.raises(ProtocolError) as info:
        parse_server_event(text)
    assert "\n" not in str(info.value)


def test_unknown_type_is_parsed_not_known() -> None:
    ev = parse_server_event('{"type": "future.event", "x": 1}')
    assert ev.type == "future.event" and not ev.known
    assert parse_server_event('{"type": "rate_limits.updated", "rate_limits": []}').known


def test_error_message_is_one_line() -> None:
    ev = parse_server_event(json.dumps({"type": "error", "error": {"type": "invalid_request_error",
                                                                    "code": "bad", "message": "nope"}}))
    assert protocol.error_message(ev) == "invalid_request_error: bad: nope"


@given(st.one_of(st.text(max_size=200), st.binary(max_size=200),
                 st.dictionaries(st.sampled_from(["type", "item_id", "delta", "audio_end_ms", "response", "error"]),
                                 st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=20),
                                           st.sampled_from(sorted(protocol.SERVER_EVENT_TYPES))),
                                 max_size=5).map(json.dumps)))
@settings(max_examples=300, deadline=None)  # (a loaded machine is not a parser bug)
def test_parser_only_raises_protocol_error(text: str | bytes) -> None:
    try:
        ev = parse_server_event(text)
    except ProtocolError:
        return
    assert isinstance(ev.type, str) and ev.data["type"] == ev.type


def _official_models() -> dict[str, type]:
    """Server event type -> its pydantic model in openai.types.realtime."""
    import typing

    from openai.types.realtime import RealtimeServerEvent

    union = typing.get_args(RealtimeServerEvent)[0] if typing.get_origin(RealtimeServerEvent) is typing.Annotated \
        else RealtimeServerEvent
    models: dict[str, type] = {}
    for model in typing.get_args(union):
        (name,) = typing.get_args(model.model_fields["type"].annotation)
        models[name] = model
    return models


def _nullable(model: type, key: str) -> bool:
    import typing

    f = model.model_fields.get(key)  # type: ignore[attr-defined]
    return f is None or not f.is_required() or type(None) in typing.get_args(f.annotation)


def test_required_fields_are_required_and_non_null_in_the_official_types() -> None:
    """The parser is never stricter than openai.types.realtime: what it requires, they require."""
    models = _official_models()
    for ev_type, fields in protocol.REQUIRED_FIELDS.items():
        model = models[ev_type]
        for key in fields:
            assert not _nullable(model, key), f"{ev_type}.{key} is Optional in openai.types.realtime"


ERROR_WITH_NULLS = {"type": "error", "event_id": None,
                    "error": {"type": "server_error", "code": None, "message": "boom", "param": None, "event_id": None}}


@pytest.mark.parametrize("key", sorted(protocol.OPTIONAL_FIELDS))
def test_null_in_an_optional_field_is_accepted(key: str) -> None:
    """Issue 11, 4b: compatible servers send null where a field does not apply; absent and null
    are the same. Every event type the daemon reads, with that field null, still parses."""
    for ev_type in ["error", "response.output_audio.delta", "response.done", "input_audio_buffer.committed",
                    "conversation.item.added", "response.output_audio_transcript.delta"]:
        ev = {"type": ev_type, "item_id": "i", "delta": "AAAAAA==", "response": {"id": "r", "status": None},
              "item": {"id": "i"}, "error": ERROR_WITH_NULLS["error"], key: None}
        parsed = parse_server_event(json.dumps(ev))
        assert parsed.type == ev_type
    assert protocol.error_message(parse_server_event(json.dumps(ERROR_WITH_NULLS))) == "server_error: boom"
    # a value that is there is still checked
    with pytest.raises(ProtocolError):
        parse_server_event(json.dumps({**ERROR_WITH_NULLS, key: [1]}))


def test_input_transcription_only_when_configured() -> None:
    """The user's side of the conversation is carried into a new session only if transcribed."""
    off = protocol.session_update(RealtimeSettings(transcription_model=""))
    assert "transcription" not in off["session"]["audio"]["input"]
    ev = protocol.session_update(RealtimeSettings(transcription_model="gpt-4o-mini-transcribe"))
    check_client_event(ev)
    assert ev["session"]["audio"]["input"]["transcription"] == {"model": "gpt-4o-mini-transcribe"}
