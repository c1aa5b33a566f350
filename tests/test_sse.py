"""SSE framing: every line-ending and field edge case, and chunking independence."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.sse import SSEDecoder, SSEEvent, encode_comment, encode_event


def decode(*chunks: bytes) -> list[SSEEvent]:
    decoder = SSEDecoder()
    events: list[SSEEvent] = []
    for chunk in chunks:
        events.extend(decoder.feed(chunk))
    events.extend(decoder.close())
    return events


def data_of(events: list[SSEEvent]) -> list[str]:
    return [e.data for e in events]


def test_lf_crlf_and_cr_line_endings_give_the_same_events() -> None:
    lf = b"event: a\ndata: 1\n\ndata: 2\n\n"
    expected = [SSEEvent("a", "1"), SSEEvent(None, "2")]
    assert decode(lf) == expected
    assert decode(lf.replace(b"\n", b"\r\n")) == expected
    assert decode(lf.replace(b"\n", b"\r")) == expected


def test_mixed_line_endings_in_one_stream() -> None:
    assert data_of(decode(b"data: 1\r\n\rdata: 2\n\r\ndata: 3\r\r")) == ["1", "2", "3"]


def test_crlf_split_across_chunks_is_one_line_ending() -> None:
    # If the LF after a chunk-final CR counted as a second line ending, the blank line would
    # dispatch "a" early, and "b" would become a separate event.
    assert decode(b"data: a\r", b"\ndata: b\r\n\r\n") == [SSEEvent(None, "a\nb")]


def test_cr_at_chunk_end_then_lf_alone() -> None:
    assert decode(b"data: a\r", b"\n", b"\r", b"\n") == [SSEEvent(None, "a")]


def test_lone_cr_at_chunk_end_is_dispatched_without_waiting() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: x\r\r") == [SSEEvent(None, "x")]


def test_multi_line_data_is_joined_with_lf() -> None:
    assert decode(b"data: a\ndata: b\ndata:\ndata: c\n\n") == [SSEEvent(None, "a\nb\n\nc")]


def test_comments_are_ignored_and_a_comment_only_block_dispatches_nothing() -> None:
    assert decode(b": keep-alive\n\n:\n\ndata: x\n: inside\n\n") == [SSEEvent(None, "x")]


def test_data_without_space_after_colon_and_only_one_space_stripped() -> None:
    assert data_of(decode(b"data:x\n\ndata:  two\n\n")) == ["x", " two"]


def test_field_line_without_colon_is_a_field_with_empty_value() -> None:
    # "data" alone appends an empty line: the event is dispatched with empty data.
    assert decode(b"data\n\n") == [SSEEvent(None, "")]
    assert decode(b"data: a\ndata\n\n") == [SSEEvent(None, "a\n")]


def test_empty_data_value_is_an_event_with_empty_data() -> None:
    assert decode(b"event: ping\ndata: \n\n") == [SSEEvent("ping", "")]


def test_event_without_data_dispatches_nothing_and_resets_the_name() -> None:
    assert decode(b"event: lonely\n\ndata: x\n\n") == [SSEEvent(None, "x")]


def test_empty_event_name_counts_as_none() -> None:
    assert decode(b"event:\ndata: x\n\n") == [SSEEvent(None, "x")]


def test_unknown_fields_are_ignored() -> None:
    assert decode(b"foo: bar\ndata: x\nbaz\n\n") == [SSEEvent(None, "x")]


def test_id_sticks_until_changed_and_null_ids_are_ignored() -> None:
    events = decode(b"id: 1\ndata: a\n\ndata: b\n\nid: 2\x00\ndata: c\n\nid\ndata: d\n\n")
    assert [(e.data, e.id) for e in events] == [("a", "1"), ("b", "1"), ("c", "1"), ("d", "")]


def test_retry_is_reported_once_and_non_digits_ignored() -> None:
    events = decode(b"retry: 3000\ndata: a\n\ndata: b\n\nretry: 1x\ndata: c\n\n")
    assert [e.retry for e in events] == [3000, None, None]


def test_bom_at_start_is_stripped_even_when_split() -> None:
    stream = b"\xef\xbb\xbfdata: x\n\n"
    assert decode(stream) == [SSEEvent(None, "x")]
    assert decode(*[stream[i : i + 1] for i in range(len(stream))]) == [SSEEvent(None, "x")]


def test_bom_is_stripped_only_at_stream_start() -> None:
    assert decode(b"data: a\n\n\xef\xbb\xbfdata: b\n\n") == [SSEEvent(None, "a")]


def test_partial_bom_prefix_that_is_not_a_bom_is_kept() -> None:
    # The kept bytes form a junk line that is ignored; the event after it survives.
    assert decode(b"\xef", b"\nda", b"ta: x\n\n") == [SSEEvent(None, "x")]
    assert decode(b"\xef\xbb", b"\xbcdata: x\n\n") == []
    assert decode(b"\xef\xbb") == []


def test_utf8_character_split_across_chunks() -> None:
    raw = "data: héllo 🌍 ünï\n\n".encode()
    split_at = raw.index("🌍".encode()) + 2
    assert decode(raw[:split_at], raw[split_at:]) == [SSEEvent(None, "héllo 🌍 ünï")]


def test_invalid_utf8_is_replaced_not_raised() -> None:
    assert decode(b"data: \xff\n\n") == [SSEEvent(None, "\ufffd")]


def test_close_flushes_a_last_event_without_trailing_blank_line() -> None:
    assert decode(b"data: a\n\ndata: last") == [SSEEvent(None, "a"), SSEEvent(None, "last")]
    assert decode(b"data: last\n") == [SSEEvent(None, "last")]
    assert decode(b"event: e\ndata: last\r") == [SSEEvent("e", "last")]


def test_close_with_nothing_pending_and_empty_chunks() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"") == []
    assert decoder.close() == []


def test_long_line_over_many_chunks() -> None:
    payload = "x" * 100_000
    raw = f"data: {payload}\n\n".encode()
    chunks = [raw[i : i + 7] for i in range(0, len(raw), 7)]
    assert decode(*chunks) == [SSEEvent(None, payload)]


def test_openai_style_stream_with_done() -> None:
    raw = b'data: {"a":1}\n\ndata: {"b":2}\n\ndata: [DONE]\n\n'
    assert data_of(decode(raw)) == ['{"a":1}', '{"b":2}', "[DONE]"]


ANTHROPIC_LIKE = (
    b'\xef\xbb\xbfevent: message_start\r\ndata: {"type":"message_start"}\r\n\r\n'
    b": comment\n\nevent: ping\ndata: {}\n\n"
    b'event: content_block_delta\rdata: {"text":"h\xc3\xa9 \xf0\x9f\x8c\x8d"}\r\r'
    b"id: 7\nretry: 10\ndata: a\ndata:b\ndata\n\n"
    b"event: lonely\n\n"
    b"data: tail"
)


def test_reference_stream_decodes_as_expected() -> None:
    assert decode(ANTHROPIC_LIKE) == [
        SSEEvent("message_start", '{"type":"message_start"}'),
        SSEEvent("ping", "{}"),
        SSEEvent("content_block_delta", '{"text":"hé 🌍"}'),
        SSEEvent(None, "a\nb\n", "7", 10),
        SSEEvent(None, "tail", "7"),
    ]


def test_byte_by_byte_equals_whole() -> None:
    whole = decode(ANTHROPIC_LIKE)
    assert decode(*[ANTHROPIC_LIKE[i : i + 1] for i in range(len(ANTHROPIC_LIKE))]) == whole


@settings(max_examples=150, deadline=None)
@given(cuts=st.lists(st.integers(min_value=0, max_value=len(ANTHROPIC_LIKE)), max_size=40))
def test_any_chunking_gives_identical_events(cuts: list[int]) -> None:
    points = sorted(set(cuts))
    chunks = [
        ANTHROPIC_LIKE[a:b]
        for a, b in zip([0, *points], [*points, len(ANTHROPIC_LIKE)], strict=True)
    ]
    assert decode(*chunks) == decode(ANTHROPIC_LIKE)


_field_line = st.sampled_from(
    [
        b"data: x",
        b"data:\xc3\xa9",
        b"data",
        b"event: e",
        b"event:",
        b": c",
        b"id: 1",
        b"retry: 5",
        b"data: \xf0\x9f\x8c\x8d",
        b"",
        b"junk",
    ]
)


@settings(max_examples=150, deadline=None)
@given(
    lines=st.lists(_field_line, max_size=30),
    endings=st.lists(st.sampled_from([b"\n", b"\r", b"\r\n"]), min_size=30, max_size=30),
    cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=20),
)
def test_random_streams_any_endings_any_chunking(
    lines: list[bytes], endings: list[bytes], cuts: list[int]
) -> None:
    # A CR ending followed by an empty line ending in LF would read as one CRLF: use CRLF there.
    fixed = [
        b"\r\n" if end == b"\r" and i + 1 < len(lines) and not lines[i + 1] else end
        for i, end in enumerate(endings[: len(lines)])
    ]
    raw = b"".join(line + end for line, end in zip(lines, fixed, strict=True))
    lf_only = b"".join(line + b"\n" for line in lines)
    points = sorted({c for c in cuts if c <= len(raw)})
    chunks = [raw[a:b] for a, b in zip([0, *points], [*points, len(raw)], strict=True)]
    assert decode(*chunks) == decode(lf_only)


def test_encode_event_round_trips() -> None:
    assert encode_event('{"a":1}') == b'data: {"a":1}\n\n'
    assert encode_event(b"x", "ping") == b"event: ping\ndata: x\n\n"
    encoded = encode_event("line1\nline2\r\nline3\rline4\n", "multi")
    assert encoded == (
        b"event: multi\ndata: line1\ndata: line2\ndata: line3\ndata: line4\ndata: \n\n"
    )
    assert decode(encoded) == [SSEEvent("multi", "line1\nline2\nline3\nline4\n")]
    assert decode(encode_event("")) == [SSEEvent(None, "")]


def test_encode_comment_is_ignored_by_the_decoder() -> None:
    assert encode_comment("keep\nalive") == b": keep alive\n\n"
    assert decode(encode_comment("x") + encode_event("y")) == [SSEEvent(None, "y")]


def test_events_complete_across_chunk_boundaries() -> None:
    assert decode(b"data: a\r", b"\n\r\ndata: b") == [SSEEvent(None, "a"), SSEEvent(None, "b")]
    assert decode(b"event: x\ndata: 1\n\nda", b"ta: 2\n\n") == [
        SSEEvent("x", "1"),
        SSEEvent(None, "2"),
    ]
