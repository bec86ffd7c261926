"""The input rules pages and API share: what each refuses, and that the refusal names the field."""

import datetime as dt

import pytest

from web import inputs
from web.inputs import InvalidInputError


@pytest.mark.parametrize("raw", ["²", "٣", "1_000", "1e3", " ", "", "0x10", "+-1", "9" * 20])
def test_integers_are_ascii_digits_only(raw):
    with pytest.raises(InvalidInputError) as caught:
        inputs.check_integer(raw, "before")
    assert caught.value.parameter == "before"
    assert raw.strip() == "" or raw not in caught.value.message


def test_integers_outside_their_range_are_refused():
    assert inputs.check_integer(" 42 ", "before") == 42
    assert inputs.check_integer(str(inputs.MAX_INTEGER), "before") == inputs.MAX_INTEGER
    for raw in ["0", "-5", str(10**30), str(inputs.MAX_INTEGER + 1)]:
        with pytest.raises(InvalidInputError):
            inputs.check_integer(raw, "before")
    assert inputs.check_integer("-5", "offset", minimum=-10) == -5
    with pytest.raises(InvalidInputError):
        inputs.check_integer(True, "flag")


@pytest.mark.parametrize(
    ("raw", "single_line"),
    [("a\x00b", False), ("a\nb", True), ("a\tb", True), ("\x7f", True), ("\ud800", False)],
)
def test_text_refuses_what_no_database_or_single_line_field_holds(raw, single_line):
    with pytest.raises(InvalidInputError) as caught:
        inputs.check_text(raw, "given_name", single_line=single_line)
    assert "given_name" in caught.value.message


def test_text_keeps_ordinary_unicode_and_multi_line_text_where_allowed():
    assert inputs.check_text("Zoë Ñúñez 李", "given_name") == "Zoë Ñúñez 李"
    assert inputs.check_text("line one\nline two", "reason", single_line=False)
    with pytest.raises(InvalidInputError):
        inputs.check_text("x" * 101, "q", max_length=100)


def test_datetimes_within_range_parse_and_naive_ones_get_the_time_zone():
    moment = inputs.check_datetime("2026-01-31", "since")
    assert moment.tzinfo is not None
    assert (moment.year, moment.month, moment.day) == (2026, 1, 31)
    exact = inputs.check_datetime("2026-01-31T10:00:00+02:00", "since")
    assert exact == dt.datetime(2026, 1, 31, 8, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    "raw",
    [
        "9999-12-31T23:59:59-23:59",
        "0001-01-01",
        "9999-12-31",
        "1899-12-31",
        "2026-02-30",
        "yesterday",
        "2026-01-01\x00",
        "1" * 100,
    ],
)
def test_datetimes_out_of_range_or_malformed_are_refused(raw):
    with pytest.raises(InvalidInputError) as caught:
        inputs.check_datetime(raw, "until")
    assert caught.value.parameter == "until"


def test_json_deeper_than_the_limit_is_refused_without_recursion_error():
    deep = "[" * 10_000 + "]" * 10_000
    with pytest.raises(InvalidInputError, match="deeper"):
        inputs.load_json(deep)
    shallow_but_over = "[" * 40 + "]" * 40
    with pytest.raises(InvalidInputError, match="deeper"):
        inputs.load_json(shallow_but_over)
    assert inputs.load_json('{"a": [1, {"b": null}]}') == {"a": [1, {"b": None}]}
    with pytest.raises(InvalidInputError, match="not valid JSON"):
        inputs.load_json(b"{'a': 1}")


def test_form_fields_turn_refusals_into_field_errors():
    from django import forms

    class Filters(forms.Form):
        before = inputs.StrictIntegerField(required=False)
        actor = inputs.SingleLineCharField(required=False, max_length=150)
        since = inputs.BoundedDateTimeField(required=False)

    form = Filters({"before": "²", "actor": "a\x00", "since": "9999-12-31"})
    assert not form.is_valid()
    assert set(form.errors) == {"before", "actor", "since"}
    good = Filters({"before": "12", "actor": "ada", "since": ""})
    assert good.is_valid(), good.errors
    assert good.cleaned_data == {"before": 12, "actor": "ada", "since": None}
