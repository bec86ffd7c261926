"""The import CSV as a file: every bad-file case with its message, quoting, encodings, chunk
boundaries, 100,000 rows in bounded memory, the template, and formula-safe report cells."""

import codecs
import csv
import io
import json
import tracemalloc
from collections.abc import Iterator

import pytest

from identities.forms import IDENTITY_FORMS
from imports import csvfile
from imports.csvfile import COLUMNS, ImportFileError, scan
from tests import factories

HEADER = ",".join(COLUMNS)
API_ROW = "api_key,Workspace,,,,,,,,,{secret},{name},,"


def pieces(data: bytes, size: int = 1024 * 1024) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def summary(data: bytes, **kwargs) -> csvfile.FileSummary:
    kwargs.setdefault("max_rows", 100_000)
    return scan(pieces(data), **kwargs)


def problem(data: bytes, **kwargs) -> str:
    with pytest.raises(ImportFileError) as caught:
        summary(data, **kwargs)
    return str(caught.value)


def rows_of(data: bytes) -> list[csvfile.Row]:
    _, rows = csvfile.read_rows(pieces(data))
    return list(rows)


def api_rows(count: int) -> bytes:
    lines = [HEADER] + [API_ROW.format(secret=f"k{n}", name=f"key-{n}") for n in range(count)]
    return ("\r\n".join(lines) + "\r\n").encode()


# --- files that are fine --------------------------------------------------------------------


def test_a_good_file_is_counted_and_digested() -> None:
    data = api_rows(3)
    result = summary(data)
    assert result.rows == 3
    assert result.header == list(COLUMNS)
    assert result.size == len(data)
    assert len(result.sha256) == 64


def test_utf8_with_and_without_bom_read_the_same() -> None:
    plain = (
        HEADER + "\nhuman_interactive,Workspace,,Zoë,Brontë,zoe@example.com,,,,,,,,\n"
    ).encode()
    for data in (plain, codecs.BOM_UTF8 + plain):
        [row] = rows_of(data)
        assert row.cells["type"] == "human_interactive"
        assert row.cells["given_name"] == "Zoë"
        assert summary(data).rows == 1


def test_quoted_cells_with_newlines_commas_and_quotes_parse_as_one_cell() -> None:
    key = json.dumps(factories.service_account_key("PEM"), indent=2)
    rows = [
        {"type": "service_account", "platform": "Workspace", "json_key": key},
        {"type": "api_key", "platform": "Workspace", "name": 'ci, "deploy"', "api_key": "a,b"},
    ]
    data = factories.import_csv(rows)
    assert key.count("\n") > 5  # the key's own line breaks are inside one quoted cell
    parsed = rows_of(data)
    assert [row.number for row in parsed] == [2, 3]  # spreadsheet rows, not file lines
    assert json.loads(parsed[0].cells["json_key"]) == json.loads(key)
    assert parsed[1].cells["name"] == 'ci, "deploy"'
    assert parsed[1].cells["api_key"] == "a,b"
    assert summary(data).rows == 2


def test_header_in_any_order_and_case_with_only_some_columns() -> None:
    data = b" Platform ,TYPE,name,api_key\nWorkspace,api_key,ci,k1\n"
    [row] = rows_of(data)
    assert row.cells == {"platform": "Workspace", "type": "api_key", "name": "ci", "api_key": "k1"}


def test_blank_lines_are_left_out_but_rows_keep_their_numbers() -> None:
    data = f"\n{HEADER}\n\n{API_ROW.format(secret='k', name='a')}\n,,,,,,,,,,,,,\n\n".encode()
    [row] = rows_of(data)
    assert row.number == 4
    assert summary(data).rows == 1


def test_rows_with_too_many_or_too_few_cells_are_row_problems() -> None:
    good = API_ROW.format(secret="k", name="a")
    data = "\n".join(
        [HEADER, good + ",extra", good[: good.rindex(",")], good + ",,,", good]
    ).encode()
    rows = rows_of(data)
    assert [row.number for row in rows] == [2, 3, 4, 5]
    assert rows[0].problem == (
        "15 cells, but the header has 14 columns; is a cell with a comma missing its quotes?"
    )
    assert rows[1].problem == "13 cells, but the header has 14 columns; are cells missing?"
    assert rows[0].cells == {}  # nothing of a shifted row is trusted, or echoed
    assert rows[2].problem == ""  # trailing empty cells are padding
    assert rows[3].problem == ""
    assert summary(data).rows == 4  # still rows: they fail one by one, the file is fine


def test_a_multibyte_character_split_between_pieces_is_fine() -> None:
    data = (HEADER + "\nhuman_interactive,Workspace,,Zoë,Brontë,z@example.com,,,,,,,,\n").encode()
    split = data.index("ë".encode()) + 1  # in the middle of the two bytes of ë
    assert scan(iter([data[:split], data[split:]]), max_rows=10).rows == 1
    _, rows = csvfile.read_rows(iter([data[:split], data[split:]]))
    assert next(rows).cells["given_name"] == "Zoë"


# --- files that are refused, each with its reason -------------------------------------------


def test_empty_file() -> None:
    assert problem(b"") == "The file is empty."
    assert problem(codecs.BOM_UTF8) == "The file is empty."
    assert problem(b"\r\n\n  \n") == "The file is empty."


def test_header_with_no_rows() -> None:
    assert problem(HEADER.encode()) == "The file has a header but no rows."
    assert problem((HEADER + "\n\n,,,\n").encode()) == "The file has a header but no rows."


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"Dear admin,\nplease add Ada.\n", "This is not an import CSV: its first row must be"),
        (b'[{"type": "api_key"}]\n', "This is not an import CSV: it looks like JSON."),
        (b"<html><body>hi</body></html>\n", "This is not an import CSV: it looks like HTML"),
    ],
)
def test_not_a_csv(data: bytes, expected: str) -> None:
    message = problem(data)
    assert message.startswith(expected)
    assert "Download the template" in message


def test_missing_header_does_not_echo_the_first_row() -> None:
    data = b"api_key_,Workspace,ci-deploy,sup3r-s3cret-value\n"
    message = problem(data)
    assert message.startswith("This is not an import CSV: its first row must be the header")
    assert "sup3r-s3cret-value" not in message


def test_unknown_header_names_are_named() -> None:
    message = problem(b"type,platform,emial,Phone\napi_key,Workspace,x,y\n")
    assert message == (
        "Unknown columns in the header: “emial”, “phone”. The columns are: "
        + ", ".join(COLUMNS)
        + "."
    )


def test_a_header_column_without_a_name() -> None:
    assert problem(b"type,,platform\napi_key,x,W\n").startswith(
        "Column 2 of the header has no name"
    )


def test_repeated_header_column() -> None:
    assert problem(b"type,platform,name,Name\na,b,c,d\n") == (
        "The header has “name” more than once."
    )


@pytest.mark.parametrize(
    ("header", "missing"),
    [("platform,name,api_key", "“type”"), ("type,name,api_key", "“platform”")],
)
def test_missing_required_column(header: str, missing: str) -> None:
    assert problem(f"{header}\na,b,c\n".encode()) == (
        f"The header has no {missing} column; every file needs type and platform."
    )


@pytest.mark.parametrize(("delimiter", "label"), [(";", "semicolons"), ("\t", "tabs")])
def test_wrong_delimiter_says_use_commas(delimiter: str, label: str) -> None:
    data = f"{delimiter.join(COLUMNS)}\napi_key{delimiter}Workspace\n".encode()
    message = problem(data)
    assert message.startswith(f"The header is separated by {label}, not commas: use commas.")


def test_latin1_is_named_with_its_line() -> None:
    data = (HEADER + "\nhuman_interactive,Workspace,,Zoë,B,z@example.com,,,,,,,,\n").encode(
        "latin-1"
    )
    assert problem(data) == (
        "The file is not UTF-8: line 2 has the byte 0xEB, which is not valid UTF-8 there; it "
        "looks like Latin-1 (Windows-1252). Save it as “CSV UTF-8 (Comma delimited)” and upload "
        "it again."
    )


def test_bad_byte_line_is_counted_across_pieces() -> None:
    data = api_rows(50_000) + "api_key,Workspace,,,,,,,,,k,Zoë,,\n".encode("latin-1")
    assert data.count(b"\n") > 50_000
    assert len(data) > 2 * 1024 * 1024
    assert "line 50002 has the byte 0xEB" in problem(data)


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be"])
def test_utf16_is_named(encoding: str) -> None:
    data = (HEADER + "\n" + API_ROW.format(secret="k", name="a") + "\n").encode(encoding)
    message = problem(data)
    assert "UTF-16" in message
    assert "not UTF-8" in message


def test_utf32_is_named() -> None:
    assert problem((HEADER + "\n").encode("utf-32")).startswith("The file is UTF-32")


def test_file_ending_inside_a_character() -> None:
    data = api_rows(1) + "é".encode()[:1]
    assert problem(data).startswith("The file is not UTF-8: it ends in the middle")


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"PK\x03\x04\x14\x00\x06\x00rest-of-an-xlsx", "This is an Excel workbook (.xlsx)"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1old-xls", "This is an old-style Excel workbook"),
        (b"%PDF-1.7\n%\xe2\xe3", "This is a PDF document"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", "This is a PNG image"),
    ],
)
def test_known_binary_formats_are_named(data: bytes, expected: str) -> None:
    assert problem(data).startswith(expected)


def test_nul_bytes_mean_a_binary_file() -> None:
    data = api_rows(3) + b"type,\x00\x01\x02\x03\n"
    assert problem(data) == "This is a binary file, not a CSV text file: line 5 has a NUL byte."


def test_unclosed_quote_names_the_row() -> None:
    data = api_rows(2) + b'api_key,Workspace,,,,,,,,,"k-open,name,,\n'
    assert problem(data) == (
        "Row 4: a quoted cell is still open at the end of the file; a closing quote is missing."
    )


def test_stray_quote_names_the_row() -> None:
    data = api_rows(1) + b'api_key,Workspace,,,,,,,,,"k"x,name,,\n'
    message = problem(data)
    assert message.startswith("Row 3: it is not valid CSV")
    assert 'double the quotes inside them ("")' in message


def test_over_the_size_limit() -> None:
    data = api_rows(2000)
    assert problem(data, max_bytes=len(data) - 1).startswith("The file is larger than the limit of")
    assert summary(data, max_bytes=len(data)).rows == 2000


def test_over_the_row_limit() -> None:
    assert problem(api_rows(11), max_rows=10) == (
        "The file has more than 10 rows; split it into smaller files."
    )
    assert summary(api_rows(10), max_rows=10).rows == 10


def test_100000_rows_stream_in_bounded_memory() -> None:
    """A 100,000-row file (about 6 MB) generated piece by piece: scanning it never holds more
    than a small, fixed amount (about 0.7 MB under tracemalloc), far below the file's size."""
    count = 100_000

    def generated() -> Iterator[bytes]:
        yield (HEADER + "\r\n").encode()
        lines: list[str] = []
        for n in range(count):
            lines.append(API_ROW.format(secret=f"secret-{n:06d}-padding", name=f"key-{n:06d}"))
            if len(lines) == 2000:
                yield ("\r\n".join(lines) + "\r\n").encode()
                lines = []

    size = sum(len(piece) for piece in generated())
    assert size > 5_000_000
    tracemalloc.start()
    try:
        result = scan(generated(), max_rows=count)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.rows == count
    assert peak < 2_000_000, f"peak {peak:,} bytes while scanning a {size:,}-byte file"
    _, rows = csvfile.read_rows(generated())
    last = None
    for last in rows:  # noqa: B007 - only the last one is looked at
        pass
    assert last is not None
    assert last.number == count + 1
    assert last.cells["name"] == f"key-{count - 1:06d}"


# --- the template and the report ------------------------------------------------------------


def test_template_is_an_acceptable_file_with_every_type() -> None:
    data = "".join(csvfile.csv_lines(csvfile.template_rows())).encode()
    assert data.startswith(codecs.BOM_UTF8)
    result = summary(data)
    assert result.header == list(COLUMNS)
    types = {row.cells["type"] for row in rows_of(data)}
    assert types == set(IDENTITY_FORMS)


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ('=HYPERLINK("http://evil")', '\'=HYPERLINK("http://evil")'),
        ("+1+2", "'+1+2"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tcmd", "'\tcmd"),
        ("\rcmd", "'\rcmd"),
        ("plain", "plain"),
        ("a=b", "a=b"),
        (17, "17"),
    ],
)
def test_report_cells_never_start_like_a_formula(cell: object, expected: str) -> None:
    assert csvfile.safe_cell(cell) == expected


def test_csv_lines_escape_every_cell_and_quote_properly() -> None:
    text = "".join(csvfile.csv_lines([("row", "message"), (3, '=1+2, "x"\nnext')]))
    assert text.startswith("\ufeff")
    parsed = list(csv.reader(io.StringIO(text.lstrip("\ufeff"), newline="")))
    assert parsed == [["row", "message"], ["3", '\'=1+2, "x"\nnext']]


def test_redact_hides_secret_values_in_a_message() -> None:
    assert csvfile.redact("ops-s3cret already exists", [" ops-s3cret "]) == (
        "[redacted] already exists"
    )
    assert csvfile.redact("ab is short", ["ab"]) == "ab is short"
