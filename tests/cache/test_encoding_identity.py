"""The faster encoding and decoding paths of warm and replay give the very bytes and values of
the ones they replaced: ``codec.dumps`` is ``json.JSONEncoder``'s text, ``outbox._json_value``
is ``json.loads`` of PostgreSQL's jsonb text, for any value (a payload written by replay must
be byte for byte what the write-through writes, or verification would call it corrupted)."""

from __future__ import annotations

import datetime
import json

import pytest
from django.db import connection
from hypothesis import given, settings
from hypothesis import strategies as st

from catalog.models import Part
from sync.cache.codec import _default, dumps, encode_values
from sync.cache.declaration import spec_for
from sync.cache.outbox import _json_value, convert_row, converters_for

# The encoder codec.dumps replaced, as it was configured.
REFERENCE = json.JSONEncoder(default=_default, separators=(",", ":"))

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats()  # NaN and infinities too: JSONEncoder writes them (allow_nan)
    | st.text()  # control characters, non-ASCII, astral planes
    | st.decimals()
    | st.datetimes(timezones=st.none() | st.timezones())
    | st.dates()
    | st.times()
    | st.uuids()
    | st.binary()
)
keys = st.text() | st.integers() | st.booleans() | st.none() | st.floats(allow_nan=False)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.tuples(inner, inner)
        | st.dictionaries(keys, inner, max_size=4)
    ),
    max_leaves=12,
)


@given(values)
@settings(max_examples=400, deadline=None)
def test_dumps_writes_the_json_encoders_text(value) -> None:
    assert dumps(value) == REFERENCE.encode(value)
    assert encode_values([value, value]) == REFERENCE.encode([value, value]).encode()


def test_dumps_refuses_what_the_encoder_refuses() -> None:
    for value in ([object()], {"a": {1, 2}}, {(1, 2): 1}):
        with pytest.raises(TypeError) as ours:
            dumps(value)
        with pytest.raises(TypeError) as theirs:
            REFERENCE.encode(value)
        assert str(ours.value) == str(theirs.value)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
# jsonb's text ({"a": 1, "b": [1, 2]}: a space after ':' and ',', no ASCII escapes), compact
# text, and text with whitespace around the value (never from jsonb: decode's path then).
layouts = st.sampled_from(
    [
        lambda v: json.dumps(v, separators=(", ", ": "), ensure_ascii=False),
        lambda v: json.dumps(v, separators=(",", ":")),
        lambda v: f" {json.dumps(v)}\n",
    ]
)


def same(a, b) -> bool:
    """Equal, with the same types all the way down (1 and 1.0 differ, as NaN and NaN do not)."""
    return type(a) is type(b) and json.dumps(a) == json.dumps(b)


@given(json_values, layouts)
@settings(max_examples=400, deadline=None)
def test_json_value_reads_what_json_loads_reads(value, layout) -> None:
    text = layout(value)
    assert same(_json_value(text), json.loads(text))


def test_a_null_json_column_reads_as_none() -> None:
    assert _json_value(None) is None


@given(st.text(max_size=12))
@settings(max_examples=400, deadline=None)
def test_json_value_fails_where_json_loads_fails(text) -> None:
    try:
        expected = json.loads(text)
    except ValueError as e:
        with pytest.raises(type(e)):
            _json_value(text)
    else:
        assert same(_json_value(text), expected)


@pytest.mark.django_db
def test_rows_read_through_postgresql_convert_as_the_orm_loads_them() -> None:
    """The jsonb values PostgreSQL hands back (its own spacing, key order, number forms, raw
    UTF-8) read as the ORM's JSONField reads them."""
    specifications = {
        "weight": 0.1,
        "big": 1e300,
        "tiny": 5e-324,
        "exact": 10**25,
        "negative zero": -0.0,
        "one": 1.0,
        "text": 'é € 𝄞 "quoted" \\ \n\t\x01 </script>',
        "nested": {"b": [1, 2.5, None, True], "a": {}},
        "": [],
    }
    images = ["https://example.com/ä.png", {"alt": "x"}]
    part = Part.objects.create(
        sku="identity",
        name="n",
        price="1.00",
        description="",
        specifications=specifications,
        images=images,
        deleted_at=datetime.datetime(2026, 1, 2, tzinfo=datetime.UTC),
    )
    spec = spec_for(Part)
    columns = ", ".join(f'"{Part._meta.get_field(name).column}"' for name in spec.fields)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {columns} FROM catalog_parts WHERE id = %s", [part.pk])  # noqa: S608
        row = cursor.fetchone()
    converted = convert_row(row, converters_for(spec, "default"))
    orm = Part.objects.get(pk=part.pk)
    expected = tuple(getattr(orm, name) for name in spec.fields)
    assert converted == expected
    assert [type(v) for v in converted] == [type(v) for v in expected]
    for name in ("specifications", "images"):  # jsonb's own forms: 1e300 comes back an int
        position = spec.fields.index(name)
        assert same(converted[position], expected[position])
    assert encode_values(converted) == encode_values(expected)  # 1 and 1.0, -0.0 and 0.0 apart


def test_a_row_converts_value_by_value_and_refuses_a_wrong_width() -> None:
    converters = [None, int, None]
    assert convert_row(["a", "2", None], converters) == ("a", 2, None)
    assert convert_row(("a", "b"), [None, None]) == ("a", "b")
    with pytest.raises(ValueError, match="3 values expected, 2 read"):
        convert_row(["a", "2"], converters)
