"""The import CSV: its documented columns, checks of the file as a whole, rows streamed one
at a time, and each row validated by its identity type's own form."""

import codecs
import csv
import hashlib
import io
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from identities.forms import IDENTITY_FORMS, IdentityForm, duplicate_error
from identities.models import IdentityType, Platform
from identities.queries import existing_logins
from identities.services import IdentityInput

# Exactly the identity forms' field names, so a row is the data of the very form the page uses.
COLUMNS: tuple[str, ...] = (
    "type",
    "platform",
    "display_name",
    "given_name",
    "family_name",
    "email",
    "org_unit_path",
    "username",
    "password",
    "json_key",
    "api_key",
    "name",
    "client_id",
    "client_secret",
)
REQUIRED_COLUMNS: tuple[str, ...] = ("type", "platform")
# Cells that go to the vault and nowhere else: never echoed, never stored outside the upload.
SECRET_COLUMNS = frozenset({"password", "json_key", "api_key", "client_secret"})
# Columns that name the identity in a report (the first one filled in wins).
LOGIN_COLUMNS: tuple[str, ...] = ("email", "username", "name", "client_id")

COLUMN_HELP: dict[str, str] = {
    "type": "Identity type key: " + ", ".join(IdentityType.values) + ".",
    "platform": "The platform's name, as on the Platforms page.",
    "display_name": "Optional, for shared credentials, service accounts and OAuth clients.",
    "given_name": "Human interactive only.",
    "family_name": "Human interactive only.",
    "email": "Human interactive and managed shared credential: an address on the platform's "
    "Google Workspace domain.",
    "org_unit_path": "Human interactive only, optional; starts with /, default /.",
    "username": "External shared credential.",
    "password": "External shared credential. Goes to the vault.",
    "json_key": "Service account: the whole Google JSON key in one quoted cell. Goes to the vault.",
    "api_key": "API key: the key. Goes to the vault.",
    "name": "API key: what the key is for, e.g. ci-deploy.",
    "client_id": "OAuth client.",
    "client_secret": "OAuth client. Goes to the vault.",
}

CHUNK_BYTES = 1024 * 1024
# csv's per-cell limit (its default, set by nobody here): far above a 64 KB service-account key,
# so a longer cell almost always means a quote was never closed.
MAX_CELL_CHARS = csv.field_size_limit()
REDACTED = "[redacted]"
SAVE_AS = "Save it as “CSV UTF-8 (Comma delimited)” and upload it again."


class ImportFileError(ValueError):
    """The file as a whole cannot be imported; the message says why and what to do."""


def quoted(names: Iterable[str], *, limit: int = 5) -> str:
    items = [f"“{name[:40]}”" for name in names]
    if len(items) > limit:
        items = [*items[:limit], f"and {len(items) - limit} more"]
    return ", ".join(items)


def human_size(size: int) -> str:
    if size >= 1024 * 1024:
        return f"{size / (1024 * 1024):.1f} MB".replace(".0 MB", " MB")
    if size >= 1024:
        return f"{size / 1024:.0f} KB"
    return f"{size} bytes"


# --- the bytes ------------------------------------------------------------------------------

MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"PK\x03\x04", "an Excel workbook (.xlsx) or another ZIP archive"),
    (b"\xd0\xcf\x11\xe0", "an old-style Excel workbook (.xls)"),
    (b"%PDF", "a PDF document"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
)


def check_start(head: bytes) -> None:
    """Name the kind of file from its first bytes when it is clearly not UTF-8 text."""
    for magic, kind in MAGIC:
        if head.startswith(magic):
            raise ImportFileError(f"This is {kind}, not a CSV file. {SAVE_AS}")
    if head.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
        raise ImportFileError(f"The file is UTF-32, not UTF-8. {SAVE_AS}")
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise ImportFileError(f"The file is UTF-16 (Excel's “Unicode Text”), not UTF-8. {SAVE_AS}")
    sample = head[:4096]
    if b"\x00" in sample:
        even, odd = sample[0::2], sample[1::2]
        # ASCII text in UTF-16 has a NUL in every other byte.
        if odd and odd.count(0) > 0.4 * len(odd) and even.count(0) < 0.1 * len(even):
            raise ImportFileError(
                f"The file looks like UTF-16 (little-endian), not UTF-8. {SAVE_AS}"
            )
        if even and even.count(0) > 0.4 * len(even) and odd.count(0) < 0.1 * len(odd):
            raise ImportFileError(f"The file looks like UTF-16 (big-endian), not UTF-8. {SAVE_AS}")


def not_utf8_message(chunk: bytes, position: int, line: int) -> str:
    bad = chunk[position] if position < len(chunk) else 0
    try:
        chunk.decode("cp1252")
        guess = "it looks like Latin-1 (Windows-1252)"
    except UnicodeDecodeError:
        guess = "its encoding is unknown"
    return (
        f"The file is not UTF-8: line {line} has the byte 0x{bad:02X}, which is not valid "
        f"UTF-8 there; {guess}. {SAVE_AS}"
    )


class ByteChecker:
    """Checks a file piece by piece as it streams past: no NUL bytes, valid UTF-8, a limit on
    its size; and keeps its size and SHA-256."""

    def __init__(self, *, max_bytes: int | None = None) -> None:
        self.max_bytes = max_bytes
        self.size = 0
        self.lines = 0
        self.digest = hashlib.sha256()
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="strict")
        self._head = b""

    def feed(self, chunk: bytes) -> None:
        if len(self._head) < 8:
            self._head += chunk[:8]
            check_start(self._head + chunk[8:4096])
        self.size += len(chunk)
        if self.max_bytes is not None and self.size > self.max_bytes:
            raise ImportFileError(
                f"The file is larger than the limit of {human_size(self.max_bytes)}; "
                "split it into smaller files."
            )
        nul = chunk.find(b"\x00")
        if nul >= 0:
            line = self.lines + chunk.count(b"\n", 0, nul) + 1
            raise ImportFileError(
                f"This is a binary file, not a CSV text file: line {line} has a NUL byte."
            )
        pending = len(self._decoder.getstate()[0])
        try:
            self._decoder.decode(chunk)
        except UnicodeDecodeError as exc:
            position = max(0, exc.start - pending)
            line = self.lines + chunk.count(b"\n", 0, position) + 1
            raise ImportFileError(not_utf8_message(chunk, position, line)) from None
        self.lines += chunk.count(b"\n")
        self.digest.update(chunk)

    def finish(self) -> None:
        try:
            self._decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            raise ImportFileError(
                f"The file is not UTF-8: it ends in the middle of a character. {SAVE_AS}"
            ) from None


class ChunkReader(io.RawIOBase):
    """A readable binary stream over an iterable of byte pieces, pulling one at a time."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._pending = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._pending:
            piece = next(self._chunks, None)
            if piece is None:
                return 0
            self._pending = memoryview(piece)
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size


def open_text(chunks: Iterable[bytes]) -> io.TextIOWrapper:
    """UTF-8 text (a leading BOM dropped) with newlines untranslated, as csv wants."""
    raw = io.BufferedReader(ChunkReader(chunks), buffer_size=64 * 1024)
    return io.TextIOWrapper(raw, encoding="utf-8-sig", errors="strict", newline="")


# --- the header and the rows ----------------------------------------------------------------


def looks_like(text: str) -> str:
    start = text.lstrip()[:1]
    if start in ("{", "["):
        return "it looks like JSON. "
    if start == "<":
        return "it looks like HTML or XML. "
    return ""


def parse_header(cells: list[str]) -> list[str]:
    """The column names of a header row, or ImportFileError naming what is wrong with it."""
    names = [cell.strip().lower() for cell in cells]
    joined = ",".join(cells)
    if sum(name in COLUMNS for name in names) < 2:
        for delimiter, label in ((";", "semicolons"), ("\t", "tabs"), ("|", "“|”")):
            parts = [part.strip().strip('"').lower() for part in joined.split(delimiter)]
            if sum(part in COLUMNS for part in parts) >= 2:
                raise ImportFileError(
                    f"The header is separated by {label}, not commas: use commas. "
                    f"(In Excel: File, Save As, “CSV UTF-8 (Comma delimited)”.)"
                )
    if not any(name in COLUMNS for name in names):
        raise ImportFileError(
            f"This is not an import CSV: {looks_like(joined)}its first row must be the header, "
            f"with column names from: {', '.join(COLUMNS)}. Download the template to start from."
        )
    empty = [str(number) for number, name in enumerate(names, 1) if not name]
    if empty:
        raise ImportFileError(
            f"Column {', '.join(empty)} of the header has no name; every column needs one of: "
            f"{', '.join(COLUMNS)}."
        )
    unknown = [name for name in names if name not in COLUMNS]
    if unknown:
        plural = "s" if len(unknown) > 1 else ""
        raise ImportFileError(
            f"Unknown column{plural} in the header: {quoted(unknown)}. "
            f"The columns are: {', '.join(COLUMNS)}."
        )
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ImportFileError(f"The header has {quoted(repeated)} more than once.")
    missing = [name for name in REQUIRED_COLUMNS if name not in names]
    if missing:
        raise ImportFileError(
            f"The header has no {quoted(missing)} column; every file needs "
            f"{' and '.join(REQUIRED_COLUMNS)}."
        )
    return names


def csv_problem(exc: csv.Error, row: int) -> ImportFileError:
    text = str(exc)
    if "field larger than field limit" in text:
        detail = f"a cell is longer than {MAX_CELL_CHARS:,} characters; is a closing quote missing?"
    elif "unexpected end of data" in text:
        detail = "a quoted cell is still open at the end of the file; a closing quote is missing."
    else:
        detail = (
            f"it is not valid CSV ({text}). Put cells with commas, quotes or line breaks in "
            'double quotes, and double the quotes inside them ("").'
        )
    return ImportFileError(f"Row {row}: {detail}")


@dataclass(frozen=True)
class Row:
    """One data row: ``number`` as a spreadsheet shows it (the header is row 1)."""

    number: int
    cells: dict[str, str] = field(repr=False)
    problem: str = ""


def read_rows(chunks: Iterable[bytes]) -> tuple[list[str], Iterator[Row]]:
    """The header, and the rows after it as a lazy stream; blank rows are left out."""
    reader = csv.reader(open_text(chunks), strict=True)
    number = 0
    while True:
        number += 1
        try:
            cells = next(reader)
        except StopIteration:
            raise ImportFileError("The file is empty.") from None
        except csv.Error as exc:
            raise csv_problem(exc, number) from None
        # Blank lines above the header are harmless; the row numbers still count them.
        if any(cell.strip() for cell in cells):
            break
    header = parse_header(cells)
    return header, _rows(reader, header, number)


def _rows(reader: Iterator[list[str]], header: list[str], number: int) -> Iterator[Row]:
    width = len(header)
    while True:
        number += 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise csv_problem(exc, number) from None
        if not "".join(cells).strip():
            continue
        # Some spreadsheets pad rows with empty cells past the last column.
        if len(cells) > width and not any(cell.strip() for cell in cells[width:]):
            cells = cells[:width]
        if len(cells) != width:
            hint = (
                "is a cell with a comma missing its quotes?"
                if len(cells) > width
                else "are cells missing?"
            )
            problem = f"{len(cells)} cells, but the header has {width} columns; {hint}"
            yield Row(number, {}, problem)
            continue
        yield Row(number, dict(zip(header, cells, strict=True)))


@dataclass(frozen=True)
class FileSummary:
    """What an accepted file looks like: its data rows, size and digest."""

    header: list[str]
    rows: int
    size: int
    sha256: str


def scan(
    chunks: Iterable[bytes],
    *,
    max_rows: int,
    max_bytes: int | None = None,
    sink: Callable[[bytes], None] | None = None,
) -> FileSummary:
    """Read a whole file once, as it streams past, and raise ImportFileError for anything that
    makes it unusable as a whole. Each piece goes to ``sink`` after it passed the checks."""
    checker = ByteChecker(max_bytes=max_bytes)

    def checked() -> Iterator[bytes]:
        for chunk in chunks:
            checker.feed(chunk)
            if sink is not None:
                sink(chunk)
            yield chunk
        checker.finish()

    header, rows = read_rows(checked())
    count = 0
    for _row in rows:
        count += 1
        if count > max_rows:
            raise ImportFileError(
                f"The file has more than {max_rows:,} rows; split it into smaller files."
            )
    if count == 0:
        raise ImportFileError("The file has a header but no rows.")
    return FileSummary(
        header=header, rows=count, size=checker.size, sha256=checker.digest.hexdigest()
    )


# --- one row against its form ---------------------------------------------------------------

VALID = "valid"
SKIPPED = "skipped"
FAILED = "failed"


@dataclass
class RowCheck:
    """A row's verdict: the identity to create, or why it is skipped or failed."""

    row: Row
    outcome: str
    data: IdentityInput | None = None
    problems: list[tuple[str, str]] = field(default_factory=list)
    login_field: str = "login"

    def skip(self, message: str) -> None:
        """Valid, but its identity exists already: nothing to do, and not an error."""
        self.outcome = SKIPPED
        self.data = None
        self.problems = [(self.login_field, message)]

    @property
    def identity_type(self) -> str:
        return self.row.cells.get("type", "").strip()[:64]

    @property
    def platform(self) -> str:
        return self.row.cells.get("platform", "").strip()[:200]

    @property
    def login(self) -> str:
        if self.data is not None:
            return self.data.login[:320]
        for name in LOGIN_COLUMNS:
            value = self.row.cells.get(name, "").strip()
            if value:
                return value[:320]
        return ""


def platform_index(platforms: Iterable[Platform]) -> dict[str, Platform]:
    """Platforms by exact name, and by case-folded name where that is unambiguous."""
    index: dict[str, Platform] = {}
    folded: dict[str, list[Platform]] = {}
    for platform in platforms:
        index[platform.name] = platform
        folded.setdefault(platform.name.casefold(), []).append(platform)
    for name, matches in folded.items():
        if len(matches) == 1:
            index.setdefault(name, matches[0])
    return index


def redact(message: str, secrets: Iterable[str]) -> str:
    """Never let a secret through, even if a form ever quoted a value back."""
    for secret in secrets:
        value = secret.strip()
        if len(value) >= 4:
            message = message.replace(value, REDACTED)
    return message


def type_problem(value: str) -> str:
    expected = ", ".join(key for key in IdentityType.values if key in IDENTITY_FORMS)
    if not value:
        return f"This field is required. Expected one of: {expected}."
    return f"Unknown type “{value[:40]}”. Expected one of: {expected}."


def is_duplicate(form: IdentityForm) -> bool:
    """The form's only complaint is its own "already exists" check on the login field."""
    errors = form.errors.as_data()
    if set(errors) != {form.login_field} or len(errors[form.login_field]) != 1:
        return False
    error = errors[form.login_field][0]
    platform = form.cleaned_data.get("platform")
    return error.code == "duplicate" or (
        platform is not None and " ".join(error.messages).endswith(f" exists on {platform.name}.")
    )


class RowForms:
    """The identity form of each type, made once and bound to one row after another: every
    row is checked by the form's own fields and clean methods, without copying the form's
    fields for each row. Forms made here skip their own duplicate query (check_rows asks
    for all the logins at once) and take their platform from those loaded already. An
    import keeps one RowForms for each job's slice of the file, so what the forms look up
    (a platform's org units) is asked once per slice."""

    def __init__(self, platforms: Mapping[int, Platform]) -> None:
        self.platforms = platforms
        self.forms: dict[type[IdentityForm], IdentityForm] = {}

    def bind(self, form_class: type[IdentityForm], data: dict[str, Any]) -> IdentityForm:
        form = self.forms.get(form_class)
        if form is None:
            form = form_class(data=data, platforms=self.platforms, check_duplicate=False)
            self.forms[form_class] = form
            return form
        return form.rebind(data)


def check_rows(
    rows: Iterable[Row], platforms: Mapping[str, Platform], *, forms: RowForms | None = None
) -> list[RowCheck]:
    """Validate many rows, each with the form of its type, and look their logins up in one
    query instead of one per form: a login that exists already is skipped, as check_row
    skips it."""
    forms = forms or row_forms(platforms)
    checks = [check_row(row, platforms, forms=forms) for row in rows]
    valid = [check for check in checks if check.outcome == VALID and check.data is not None]
    existing = existing_logins(
        {(check.data.platform.pk, check.data.login) for check in valid if check.data is not None}
    )
    for check in valid:
        data = check.data
        if data is not None and (data.platform.pk, data.login) in existing:
            secrets = [check.row.cells[n] for n in SECRET_COLUMNS if check.row.cells.get(n)]
            message = " ".join(duplicate_error(data.login, data.platform).messages)
            check.skip(redact(message, secrets))
    return checks


def row_forms(platforms: Mapping[str, Platform]) -> RowForms:
    return RowForms({platform.pk: platform for platform in platforms.values()})


def used_columns(form_class: type[IdentityForm]) -> frozenset[str]:
    """The CSV columns a type's form reads."""
    used = _USED_COLUMNS.get(form_class)
    if used is None:
        used = _USED_COLUMNS[form_class] = frozenset(
            name for name in form_class.base_fields if name in COLUMNS
        )
    return used


_USED_COLUMNS: dict[type[IdentityForm], frozenset[str]] = {}


def check_row(
    row: Row, platforms: Mapping[str, Platform], *, forms: RowForms | None = None
) -> RowCheck:
    """Validate one row with the form of its type, bound to the row's cells as data
    (check_rows checks many, with one form per type and without the duplicate query)."""
    if row.problem:
        return RowCheck(row, FAILED, problems=[("columns", row.problem)])
    cells = row.cells
    secrets = [cells[name] for name in SECRET_COLUMNS if cells.get(name)]
    problems: list[tuple[str, str]] = []
    type_key = cells.get("type", "").strip()
    form_class = IDENTITY_FORMS.get(type_key)
    if form_class is None:
        problems.append(("type", type_problem(type_key)))
    platform_name = cells.get("platform", "").strip()
    platform = platforms.get(platform_name) or platforms.get(platform_name.casefold())
    if not platform_name:
        problems.append(("platform", "This field is required."))
    elif platform is None:
        problems.append(("platform", f"No platform named “{platform_name[:100]}”."))
    if form_class is None or platform is None:
        return RowCheck(row, FAILED, problems=[(f, redact(m, secrets)) for f, m in problems])

    used = used_columns(form_class)
    for name, value in cells.items():
        if name not in used and name not in REQUIRED_COLUMNS and value.strip():
            problems.append((name, f"Not used by type {type_key}; leave it empty."))
    data: dict[str, Any] = {name: cells[name] for name in used if name in cells}
    data["platform"] = platform.pk
    form = forms.bind(form_class, data) if forms is not None else form_class(data=data)
    login_field = form_class.login_field
    if form.is_valid() and not problems:
        return RowCheck(row, VALID, data=form.to_input(), login_field=login_field)
    if not problems and is_duplicate(form):
        check = RowCheck(row, VALID, login_field=login_field)
        check.skip(redact(" ".join(str(m) for m in form.errors[login_field]), secrets))
        return check
    for name, messages in form.errors.items():
        for message in messages:
            problems.append((name if name != "__all__" else "row", str(message)))
    redacted = [(name, redact(message, secrets)) for name, message in problems]
    return RowCheck(row, FAILED, problems=redacted, login_field=login_field)


def template_rows() -> list[list[str]]:
    """The downloadable template: the header and one example row per type."""
    example: dict[str, dict[str, str]] = {
        IdentityType.HUMAN_INTERACTIVE: {
            "given_name": "Ada",
            "family_name": "Lovelace",
            "email": "ada@your-domain.example",
            "org_unit_path": "/Engineering",
        },
        IdentityType.SHARED_CREDENTIAL_MANAGED: {
            "email": "ops-shared@your-domain.example",
            "display_name": "Ops shared mailbox",
        },
        IdentityType.SHARED_CREDENTIAL_EXTERNAL: {
            "username": "ops-bot",
            "password": "replace-with-the-password",
            "display_name": "Ops bot",
        },
        IdentityType.SERVICE_ACCOUNT: {
            "json_key": '{"type": "service_account", "...": "paste the whole JSON key"}',
            "display_name": "CI robot",
        },
        IdentityType.API_KEY: {"name": "ci-deploy", "api_key": "replace-with-the-key"},
        IdentityType.OAUTH_CLIENT: {
            "client_id": "portal-client-123",
            "client_secret": "replace-with-the-secret",
            "display_name": "Portal",
        },
    }
    rows = [list(COLUMNS)]
    for type_key, values in example.items():
        cells = {"type": str(type_key), "platform": "Your platform name", **values}
        rows.append([cells.get(name, "") for name in COLUMNS])
    return rows


# --- the problem report ---------------------------------------------------------------------

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: object) -> str:
    """A cell a spreadsheet shows as text: one starting like a formula gets a leading quote."""
    text = str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


class _Line:
    """csv.writer's file: hands each written line back instead of keeping it."""

    def write(self, line: str) -> str:
        return line


def csv_lines(rows: Iterable[Iterable[object]], *, bom: bool = True) -> Iterator[str]:
    """Rows as CSV text, one line at a time, every cell made safe for spreadsheets. The BOM
    tells Excel the file is UTF-8."""
    writer = csv.writer(_Line())
    if bom:
        yield "\ufeff"
    for row in rows:
        yield writer.writerow([safe_cell(cell) for cell in row])


REPORT_HEADER = ("row", "outcome", "field", "message", "type", "platform", "login")
