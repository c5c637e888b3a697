"""Hypothesis strategies for hostile requests, built from the proto descriptors.

Every field of every request message gets values chosen to hurt: huge strings, NUL bytes,
SQL fragments, boundary and overflow numbers, unknown enum values, deep and huge JSON,
timestamps and durations out of range. Ids are often real ones (seeded by the test), so the
requests get past validation into the database. `malformed` builds request bytes protobuf
itself would never produce: invalid UTF-8, truncation, wrong wire types, unknown fields,
nesting past the parser's recursion limit.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from google.protobuf import descriptor as pb_descriptor
from google.protobuf import duration_pb2, timestamp_pb2
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from hypothesis import strategies as st

FD = pb_descriptor.FieldDescriptor
INT32 = (-(2**31), 2**31 - 1)
INT64 = (-(2**63), 2**63 - 1)

# Ids the test seeds, so that some requests reach the database and the state machine.
KNOWN_IDS = ["ada", "bob", "away", "t-todo", "t-running", "t-done", "t-blocked", "ws-1", "ch-1"]

SQL_FRAGMENTS = [
    "'; DROP TABLE tasks; --",
    "' OR '1'='1",
    "ada' --",
    '"; SELECT pg_sleep(10); --',
    "%s",
    "%(id)s",
    "$1",
    "\\",
    "\\x00",
    "NULL",
    "*",
    "%",
    "_",
    "ada%",
    "COMMIT; DROP DATABASE postgres;",
    "1; LISTEN x",
    "E'\\x41'",
]

ODD_TEXT = [
    "",
    " ",
    "\x00",
    "ada\x00",
    "ada\n",
    "\x00ada",
    "UTC\x00",
    "Europe",
    "Europe/../UTC",
    "../../../etc/passwd",
    "/etc/localtime",
    "\t\n\r",
    "\u202e",  # right-to-left override
    "\ufeff",
    "\U0001f600" * 10,
    "e\u0301" * 50,  # combining accents
    "\uffff",
    "\U0010ffff",
    "a" * 128,
    "a" * 129,
    "\u00e9" * 128,  # 128 characters, 256 bytes
    "{}",
    '{"a": 1}',
    "[" * 1000,
    "eyJhIjogMX0=",  # base64 of a JSON object: a forged page token
    "WyIyMDIwLTAxLTAxVDAwOjAwOjAwIiwgImEiLCAiIl0=",  # base64 of a token-shaped list
]

HUGE_LENGTHS = [129, 201, 501, 2_001, 4_001, 8_001, 20_001, 65_537, 1_000_001]


def _texts() -> st.SearchStrategy[str]:
    characters = st.characters(exclude_categories=["Cs"])  # protobuf cannot encode lone surrogates
    return st.one_of(
        st.sampled_from(KNOWN_IDS),
        st.sampled_from(SQL_FRAGMENTS),
        st.sampled_from(ODD_TEXT),
        st.text(characters, max_size=40),
        st.builds(lambda n, c: c * n, st.sampled_from(HUGE_LENGTHS), st.sampled_from(["a", "\xe9", "\x00"])),
    )


TEXTS = _texts()


def _integers(low: int, high: int) -> st.SearchStrategy[int]:
    edges = [low, low + 1, -1, 0, 1, 2, 3, 100, 101, 1_000, 1_001, high - 1, high]
    return st.one_of(st.sampled_from(edges), st.integers(low, high))


def _json_values() -> st.SearchStrategy[Any]:
    leaves = st.one_of(
        st.none(),
        st.booleans(),
        st.floats(allow_nan=False, allow_infinity=False),
        st.sampled_from([1e308, -1e308, 2.0**53 + 1, 5e-324]),
        TEXTS,
    )
    return st.recursive(
        leaves,
        lambda children: st.one_of(
            st.lists(children, max_size=4), st.dictionaries(TEXTS, children, max_size=4)
        ),
        max_leaves=20,
    )


def deep_json(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth):
        value = {"d": value}
    return value


def _structs() -> st.SearchStrategy[dict[str, Any]]:
    return st.one_of(
        st.dictionaries(TEXTS, _json_values(), max_size=5),
        st.sampled_from([10, 40, 60]).map(deep_json),  # deeper: see `malformed`
        st.sampled_from([70_000, 1_100_000]).map(lambda n: {"big": "x" * n}),
        st.sampled_from([5_000]).map(lambda n: {f"k{i}": i for i in range(n)}),
    )


def _timestamps() -> st.SearchStrategy[timestamp_pb2.Timestamp]:
    return st.builds(
        lambda seconds, nanos: timestamp_pb2.Timestamp(seconds=seconds, nanos=nanos),
        st.one_of(
            _integers(*INT64),
            st.sampled_from([-62_135_596_800, -62_135_596_801, 253_402_300_799, 253_402_300_800]),
            st.integers(0, 4_000_000_000),
        ),
        st.one_of(st.sampled_from([0, -1, 999_999_999, 1_000_000_000]), _integers(*INT32)),
    )


def _durations() -> st.SearchStrategy[duration_pb2.Duration]:
    return st.builds(
        lambda seconds, nanos: duration_pb2.Duration(seconds=seconds, nanos=nanos),
        st.one_of(_integers(*INT64), st.integers(0, 5), st.sampled_from([315_576_000_000, 315_576_000_001])),
        st.one_of(st.sampled_from([0, -1, 999_999_999, 1_000_000_000]), _integers(*INT32)),
    )


def _scalar(field: FD) -> st.SearchStrategy[Any]:
    kind = field.type
    if kind == FD.TYPE_STRING:
        return TEXTS
    if kind == FD.TYPE_BYTES:
        return st.binary(max_size=64)
    if kind == FD.TYPE_BOOL:
        return st.booleans()
    if kind in (FD.TYPE_DOUBLE, FD.TYPE_FLOAT):
        return st.floats(width=64 if kind == FD.TYPE_DOUBLE else 32)
    if kind == FD.TYPE_ENUM:
        assert field.enum_type is not None
        known = [v.number for v in field.enum_type.values]
        return st.one_of(st.sampled_from(known), _integers(*INT32))
    if kind in (FD.TYPE_INT32, FD.TYPE_SINT32, FD.TYPE_SFIXED32):
        return _integers(*INT32)
    if kind in (FD.TYPE_UINT32, FD.TYPE_FIXED32):
        return _integers(0, 2**32 - 1)
    if kind in (FD.TYPE_UINT64, FD.TYPE_FIXED64):
        return _integers(0, 2**64 - 1)
    return _integers(*INT64)


def _repeated(field: FD, element: st.SearchStrategy[Any]) -> st.SearchStrategy[list[Any]]:
    choices = [st.lists(element, max_size=4)]
    # Past the documented counts (64 capabilities, 32 tags, 1,000 excluded ids, ...), with
    # small entries: a huge entry times 10,000 would only measure the test's own memory.
    counts = st.sampled_from([33, 65, 257, 1_001, 10_001])
    if field.type == FD.TYPE_STRING:
        short = st.sampled_from(["", "\x00", "ada", "t-todo", "x" * 65, "'; --"])
        choices.append(st.builds(lambda n, v: [v] * n, counts, short))
        choices.append(st.builds(lambda n: [f"id-{i}" for i in range(n)], counts))  # distinct, valid
    elif field.message_type is None:
        choices.append(st.builds(lambda n, v: [v] * n, counts, _scalar(field)))
    return st.one_of(*choices)


def _set_field(message: Message, field: FD, value: Any) -> None:
    if field.message_type is not None and field.message_type.full_name == "google.protobuf.Struct":
        target = getattr(message, field.name)
        try:
            target.update(value)
        except (ValueError, TypeError, RecursionError):
            target.Clear()
        return
    if field.is_repeated:
        container = getattr(message, field.name)
        if field.message_type is not None:
            for item in value:
                container.add().CopyFrom(item)
        else:
            container.extend(value)
        return
    if field.message_type is not None:
        getattr(message, field.name).CopyFrom(value)
        return
    setattr(message, field.name, value)


def _field_values(field: FD, depth: int) -> st.SearchStrategy[Any]:
    if field.message_type is None:
        single = _scalar(field)
    else:
        name = field.message_type.full_name
        if name == "google.protobuf.Struct":
            return _structs()
        if name == "google.protobuf.Timestamp":
            single = _timestamps()
        elif name == "google.protobuf.Duration":
            single = _durations()
        else:
            single = messages(field.message_type, depth + 1)
    if field.is_repeated:
        return _repeated(field, single)
    return single


@st.composite
def _message(draw: st.DrawFn, descriptor: pb_descriptor.Descriptor, depth: int) -> Message:
    message = GetMessageClass(descriptor)()
    for field in descriptor.fields:
        if depth > 3 or not draw(st.booleans()):
            continue
        _set_field(message, field, draw(_field_values(field, depth)))
    return message


def messages(descriptor: pb_descriptor.Descriptor, depth: int = 0) -> st.SearchStrategy[Message]:
    return _message(descriptor, depth)


# Wire-level construction, for bytes protobuf's own serializer will not produce.


def varint(value: int) -> bytes:
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def length_delimited(number: int, payload: bytes) -> bytes:
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def _nested_struct(depth: int) -> bytes:
    """A Struct {"d": {"d": ... }} `depth` levels deep, written directly on the wire."""
    struct = b""
    for _ in range(depth):
        # Struct.fields (1) is a map entry {key (1): "d", value (2): Value{struct_value (5)}}.
        entry = length_delimited(1, b"d") + length_delimited(2, length_delimited(5, struct))
        struct = length_delimited(1, entry)
    return struct


INVALID_UTF8 = [
    b"\xff",
    b"\xc0\x80",  # overlong NUL
    b"\xed\xa0\x80",  # a lone surrogate (U+D800) in CESU-8 / WTF-8
    b"\xed\xbf\xbf",
    b"ada\x80",
    b"\xf4\x90\x80\x80",  # above U+10FFFF
    b"\xe2\x82",  # truncated sequence
]


def string_fields(descriptor: pb_descriptor.Descriptor) -> Sequence[FD]:
    return [f for f in descriptor.fields if f.type == FD.TYPE_STRING]


def struct_fields(descriptor: pb_descriptor.Descriptor) -> Sequence[FD]:
    return [
        f
        for f in descriptor.fields
        if f.message_type is not None and f.message_type.full_name == "google.protobuf.Struct"
    ]


@st.composite
def malformed(draw: st.DrawFn, descriptor: pb_descriptor.Descriptor) -> bytes:
    """Request bytes that are broken in one of the ways a hostile client can break them."""
    valid = draw(messages(descriptor)).SerializeToString()
    strings = string_fields(descriptor)
    structs = struct_fields(descriptor)
    choices = ["random", "truncate", "flip", "unknown", "wiretype", "huge_length", "garbage_tail"]
    if strings:
        choices.append("utf8")
    if structs:
        choices.append("deep")
    how = draw(st.sampled_from(choices))
    if how == "random":
        return draw(st.binary(max_size=200))
    if how == "truncate" and valid:
        return valid[: draw(st.integers(0, max(0, len(valid) - 1)))]
    if how == "flip" and valid:
        index = draw(st.integers(0, len(valid) - 1))
        return valid[:index] + bytes([valid[index] ^ draw(st.integers(1, 255))]) + valid[index + 1 :]
    if how == "unknown":
        number = draw(st.sampled_from([99, 1_000, 536_870_911]))
        return valid + length_delimited(number, draw(st.binary(max_size=20))) + varint(number << 3) + b"\x01"
    if how == "wiretype":
        field = draw(st.sampled_from(list(descriptor.fields)))
        wire = draw(st.sampled_from([0, 1, 2, 5]))
        body = {0: b"\x01", 1: b"\x00" * 8, 2: b"\x01a", 5: b"\x00" * 4}[wire]
        return valid + varint(field.number << 3 | wire) + body
    if how == "huge_length":
        field = draw(st.sampled_from(list(descriptor.fields)))
        return valid + varint(field.number << 3 | 2) + varint(draw(st.sampled_from([2**31, 2**63, 1 << 40])))
    if how == "utf8":
        field = draw(st.sampled_from(list(strings)))
        return valid + length_delimited(field.number, draw(st.sampled_from(INVALID_UTF8)))
    if how == "deep":
        field = draw(st.sampled_from(list(structs)))
        return valid + length_delimited(field.number, _nested_struct(draw(st.sampled_from([70, 101, 400]))))
    return valid + draw(st.binary(min_size=1, max_size=16))


# What a message must never show a client: Python or driver internals...
LEAKS = re.compile(
    r"Traceback|File \"|psycopg|sqlalchemy|asyncpg|\[SQL|sqlstate|Background on this error|"
    r"DecodeError|Exception|Error parsing|Unexpected <class|<class '",
    re.IGNORECASE,
)
# ... nor SQL, unless it is the request's own text echoed back ("unknown time zone '...'").
SQL_WORDS = re.compile(r"\b(SELECT|INSERT|UPDATE|DELETE|WHERE|FROM|JOIN|RETURNING)\b", re.IGNORECASE)


def leaks(details: str, request: bytes) -> str | None:
    """The part of a status message that should not be there, or None."""
    if found := LEAKS.search(details):
        return found.group(0)
    for word in SQL_WORDS.findall(details):
        if str(word).encode() not in request:
            return str(word)
    return None
