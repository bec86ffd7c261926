"""The import pages and API: permissions, CSRF, uploads that start a job, bad files refused
with their reason (400), the progress bar while the job runs, the report and the template."""

import csv
import io
import json
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from accounts.models import ApiToken
from identities.models import Identity, IdentityType, Platform
from imports import csvfile
from imports.models import ImportBatch, ImportChunk, ImportStatus
from jobs.models import Job, JobStatus, JobType
from tests import factories
from tests.inline import deliver

pytestmark = pytest.mark.django_db

UPLOAD_URL = reverse("imports:upload")
TEMPLATE_URL = reverse("imports:template")
API_URL = reverse("imports:api-list")
SECRET = "v1ew-s3cret-c0ffee"


@pytest.fixture(autouse=True)
def sent(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Record job messages instead of publishing them, so no test touches a broker."""
    calls: list[int] = []
    monkeypatch.setattr("jobs.services.send", lambda job_id, **kwargs: calls.append(job_id))
    return calls


@pytest.fixture
def admin(client: Client):
    user = factories.make_identity_admin()
    client.force_login(user)
    return user


@pytest.fixture
def gws() -> Platform:
    return factories.make_platform("Workspace")


@pytest.fixture
def token() -> dict[str, str]:
    _, raw = ApiToken.issue(factories.make_identity_admin("apiadmin"), "tests")
    return {"Authorization": f"Bearer {raw}"}


def api_keys(gws: Platform, count: int, *, secret: str = SECRET) -> bytes:
    return factories.import_csv(
        [
            factories.import_row(IdentityType.API_KEY, gws, f"{secret}-{n}", name=f"key-{n}")
            for n in range(count)
        ]
    )


def csv_file(data: bytes, name: str = "people.csv") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type="text/csv")


def current_job(batch: ImportBatch) -> Job:
    batch.refresh_from_db()
    assert batch.job_id is not None
    return Job.objects.get(pk=batch.job_id)


def detail_url(batch: ImportBatch) -> str:
    return reverse("imports:detail", args=[batch.pk])


def report_url(batch: ImportBatch) -> str:
    return reverse("imports:report", args=[batch.pk])


def nothing_written() -> bool:
    return not (
        ImportBatch.objects.exists() or ImportChunk.objects.exists() or Job.objects.exists()
    )


def finish(batch: ImportBatch) -> ImportBatch:
    for _ in range(50):
        batch.refresh_from_db()
        if not batch.is_active:
            return batch
        deliver(current_job(batch))
    raise AssertionError("the import did not finish")


def read_csv(response: Any) -> list[list[str]]:
    text = b"".join(response.streaming_content).decode()
    assert text.startswith("\ufeff")
    return list(csv.reader(io.StringIO(text[1:], newline="")))


# --- access ---------------------------------------------------------------------------------


def page_urls(batch: ImportBatch) -> list[str]:
    return [UPLOAD_URL, TEMPLATE_URL, detail_url(batch), report_url(batch)]


def test_anonymous_is_sent_to_login(client: Client, gws) -> None:
    batch = factories_batch(gws)
    for url in page_urls(batch):
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith(reverse("login") + "?next=")
    response = client.post(UPLOAD_URL, {"file": csv_file(api_keys(gws, 1))})
    assert response.status_code == 302
    assert ImportBatch.objects.count() == 1


def factories_batch(gws: Platform) -> ImportBatch:
    """An import uploaded by someone else, processed, with one failed row."""
    from imports import services

    data = api_keys(gws, 1) + b"api_key,Nope,,,,,,,,,k,n,,\r\n"
    uploader = factories.make_identity_admin("uploader")
    return finish(
        services.start_import(csv_file(data), filename="x.csv", dry_run=False, actor=uploader)
    )


def test_without_permission_403_and_no_data(client: Client, gws) -> None:
    batch = factories_batch(gws)
    # Viewing identities is not enough: an import creates them.
    client.force_login(factories.make_identity_viewer())
    for url in page_urls(batch):
        response = client.get(url)
        assert response.status_code == 403, url
        assert b"Nope" not in response.content
    assert client.post(UPLOAD_URL, {"file": csv_file(api_keys(gws, 1))}).status_code == 403
    assert ImportBatch.objects.count() == 1
    assert b'href="/identities/import/"' not in client.get(reverse("identities:list")).content


def test_upload_needs_csrf(gws) -> None:
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(factories.make_identity_admin())
    response = browser.post(UPLOAD_URL, {"file": csv_file(api_keys(gws, 1))})
    assert response.status_code == 403
    assert nothing_written()
    browser.get(UPLOAD_URL)
    token = browser.cookies["csrftoken"].value
    response = browser.post(
        UPLOAD_URL, {"file": csv_file(api_keys(gws, 1)), "csrfmiddlewaretoken": token}
    )
    assert response.status_code == 302


def test_wrong_method_is_405(client: Client, admin, gws) -> None:
    assert client.delete(UPLOAD_URL).status_code == 405
    assert client.post(detail_url(factories_batch(gws))).status_code == 405


def test_unknown_import_is_404(client: Client, admin) -> None:
    assert client.get(reverse("imports:detail", args=[999])).status_code == 404
    assert client.get(reverse("imports:report", args=[999])).status_code == 404


# --- the upload page ------------------------------------------------------------------------


def test_upload_page_documents_the_columns_and_links_the_template(client: Client, admin) -> None:
    response = client.get(UPLOAD_URL)
    assert response.status_code == 200
    html = response.content.decode()
    for name in csvfile.COLUMNS:
        assert f"<code>{name}</code>" in html
    assert f'href="{TEMPLATE_URL}"' in html
    assert 'enctype="multipart/form-data"' in html
    assert 'name="dry_run"' in html
    assert f'href="{UPLOAD_URL}" aria-current="page">Import</a>' in html


def test_template_csv_downloads_and_is_importable(client: Client, admin) -> None:
    response = client.get(TEMPLATE_URL)
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert "attachment" in response["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(response.content.decode().lstrip("\ufeff"))))
    assert tuple(rows[0]) == csvfile.COLUMNS
    assert csvfile.scan(iter([response.content]), max_rows=100).rows == len(rows) - 1


def test_good_upload_starts_the_job_and_shows_its_page(
    client: Client, admin, gws, sent, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            UPLOAD_URL, {"file": csv_file(api_keys(gws, 3), "keys.csv"), "dry_run": "on"}
        )
    batch = ImportBatch.objects.get()
    assert response.status_code == 302
    assert response["Location"] == detail_url(batch)
    assert (batch.filename, batch.rows_total, batch.dry_run) == ("keys.csv", 3, True)
    assert batch.created_by == admin
    job = Job.objects.get()
    assert (job.job_type, job.subject_label, job.params) == (
        JobType.BULK_IMPORT,
        f"Import #{batch.pk} keys.csv",
        {"batch_id": batch.pk, "dry_run": True},
    )
    assert sent == [job.pk]
    page = client.get(response["Location"]).content.decode()
    assert "Dry run of keys.csv started: 3 rows." in page


@pytest.mark.parametrize(
    ("data", "name", "expected"),
    [
        (b"", "empty.csv", "The file is empty."),
        (b"PK\x03\x04\x14\x00\x06\x00", "people.xlsx", "This is an Excel workbook (.xlsx)"),
        (b"\x00\x01\x02\x03binary", "x.csv", "This is a binary file, not a CSV text file"),
        (b"type;platform;name\napi_key;W;n\n", "semi.csv", "not commas: use commas."),
        (b"type,platform,naem\napi_key,W,n\n", "typo.csv", "Unknown column in the header: “naem”"),
        (b"platform,name\nW,n\n", "notype.csv", "The header has no “type” column"),
        (b"type,platform,name\n", "header.csv", "The file has a header but no rows."),
        ("type,platform\nZoë,x\n".encode("cp1252"), "latin.csv", "looks like Latin-1"),
        ("type,platform\napi_key,x\n".encode("utf-16"), "u16.csv", "The file is UTF-16"),
    ],
)
def test_bad_file_is_400_with_its_reason_and_writes_nothing(
    client: Client, admin, data: bytes, name: str, expected: str
) -> None:
    response = client.post(UPLOAD_URL, {"file": csv_file(data, name)})
    assert response.status_code == 400
    errors = response.context["form"].errors["file"]
    assert any(expected in error for error in errors), errors
    assert expected.replace("“", "&ldquo;").split("&")[0] in response.content.decode()
    assert nothing_written()


def test_missing_file_is_400(client: Client, admin) -> None:
    response = client.post(UPLOAD_URL, {})
    assert response.status_code == 400
    assert response.context["form"].errors["file"] == ["Choose a CSV file to upload."]


def test_file_over_the_limit_is_400(client: Client, admin, gws, settings) -> None:
    settings.IMPORT_MAX_BYTES = 2048
    response = client.post(UPLOAD_URL, {"file": csv_file(api_keys(gws, 100))})
    assert response.status_code == 400
    assert "the limit is 2 KB" in response.context["form"].errors["file"][0]
    assert nothing_written()


# --- progress and the report ----------------------------------------------------------------


def test_progress_shows_while_the_job_runs_then_the_report(
    client: Client, admin, gws, settings
) -> None:
    settings.IMPORT_CHUNK_ROWS = 2
    settings.IMPORT_SLICE_SECONDS = 0  # hand over after every chunk, as a long file would
    data = api_keys(gws, 4) + b"api_key,Nope,,,,,,,,,k,n,,\r\n"
    client.post(UPLOAD_URL, {"file": csv_file(data)})
    batch = ImportBatch.objects.get()
    url = detail_url(batch)

    html = client.get(url).content.decode()
    assert '<progress id="import-progress" max="5" value="0">' in html
    assert f'hx-get="{url}" hx-trigger="every 2s"' in html

    deliver(current_job(batch))  # the first chunk: rows 2 and 3
    fragment = client.get(url, headers={"HX-Request": "true"})
    html = fragment.content.decode()
    assert html.lstrip().startswith('<div id="import-live"')
    assert "<html" not in html
    assert "2 of 5 rows done (40%)" in html
    assert '<progress id="import-progress" max="5" value="2">' in html
    assert "Running" in html
    assert 'hx-trigger="every 2s"' in html
    assert "HX-Request" in fragment["Vary"]

    deliver(current_job(batch))
    html = client.get(url, headers={"HX-Request": "true"}).content.decode()
    assert "4 of 5 rows done (80%)" in html

    batch = finish(batch)
    assert batch.status == ImportStatus.COMPLETED
    html = client.get(url).content.decode()
    assert "5 of 5 rows done (100%)" in html
    assert "hx-trigger" not in html  # finished: no more polling
    assert 'class="count-created">4<' in html
    assert 'class="count-failed">1<' in html
    assert "row 6, platform: No platform named “Nope”." in html
    assert f'href="{report_url(batch)}"' in html
    assert SECRET not in html


def test_report_csv_escapes_formulas_and_holds_no_secret(client: Client, admin, gws) -> None:
    rows = [
        factories.import_row(IdentityType.API_KEY, gws, f"{SECRET}-1", platform="=HYPERLINK(1)"),
        factories.import_row(IdentityType.API_KEY, gws, f"{SECRET}-2", name="@SUM(A1)", type="x"),
        factories.import_row(IdentityType.API_KEY, gws, f"{SECRET}-3", name="-1+1"),
        factories.import_row(IdentityType.API_KEY, gws, f"{SECRET}-4", name="-1+1"),
    ]
    client.post(UPLOAD_URL, {"file": csv_file(factories.import_csv(rows))})
    batch = finish(ImportBatch.objects.get())
    response = client.get(report_url(batch))
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert f"import-{batch.pk}-report.csv" in response["Content-Disposition"]
    report = read_csv(response)
    assert report[0] == list(csvfile.REPORT_HEADER)
    assert report[1] == [
        "2",
        "failed",
        "platform",
        "No platform named “=HYPERLINK(1)”.",
        "api_key",
        "'=HYPERLINK(1)",
        "ci-deploy",
    ]
    assert report[2][0:3] == ["3", "failed", "type"]
    assert report[2][6] == "'@SUM(A1)"
    assert report[3] == [
        "5",
        "skipped",
        "name",
        "'-1+1 already exists on Workspace.",  # a message can start with a login too
        "api_key",
        "Workspace",
        "'-1+1",
    ]
    for row in report[1:]:
        assert not any(cell.startswith(csvfile.FORMULA_STARTS) for cell in row), row
    assert SECRET not in json.dumps(report)


def test_dry_run_page_says_nothing_was_created(client: Client, admin, gws) -> None:
    client.post(UPLOAD_URL, {"file": csv_file(api_keys(gws, 2)), "dry_run": "on"})
    batch = finish(ImportBatch.objects.get())
    html = client.get(detail_url(batch)).content.decode()
    assert "Nothing was created: this was a dry run." in html
    assert "Would create" in html
    assert 'class="count-created">2<' in html
    assert not Identity.objects.exists()


def test_failed_import_page_says_why_and_what_to_do(client: Client, admin, gws, settings) -> None:
    settings.JOB_MAX_RETRIES = 0
    client.post(UPLOAD_URL, {"file": csv_file(api_keys(gws, 2))})
    batch = ImportBatch.objects.get()
    settings.VAULT_ADDR, settings.VAULT_TOKEN, settings.VAULT_TIMEOUT = "http://127.0.0.1:9", "t", 1
    job = deliver(current_job(batch))
    assert job.status == JobStatus.FAILED
    html = client.get(detail_url(batch)).content.decode()
    assert "The import stopped." in html
    assert "upload the file again to go on" in html
    assert "Failed" in html
    assert "hx-trigger" not in html


# --- the API --------------------------------------------------------------------------------


def test_api_needs_authentication_and_permission(client: Client, gws) -> None:
    response = client.post(API_URL, {"file": csv_file(api_keys(gws, 1))})
    assert response.status_code == 401
    assert response.json()["detail"].startswith("authentication required")
    client.force_login(factories.make_identity_viewer())
    for response in (
        client.get(API_URL),
        client.post(API_URL, {"file": csv_file(api_keys(gws, 1))}),
    ):
        assert response.status_code == 403
        assert response.json()["detail"] == "permission denied"
    assert nothing_written()
    response = client.put(API_URL)
    assert response.status_code == 405
    assert response["Allow"] == "GET, POST"


def test_api_session_post_needs_csrf(gws) -> None:
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(factories.make_identity_admin())
    response = browser.post(API_URL, {"file": csv_file(api_keys(gws, 1))})
    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]
    assert nothing_written()


def test_api_upload_with_bearer_token(gws, token, sent) -> None:
    api = Client(enforce_csrf_checks=True)
    response = api.post(
        API_URL, {"file": csv_file(api_keys(gws, 3)), "dry_run": "false"}, headers=token
    )
    assert response.status_code == 202
    body = response.json()
    batch = ImportBatch.objects.get()
    assert response["Location"] == f"http://testserver/api/v1/imports/{batch.pk}/"
    assert body["url"] == response["Location"]
    assert (body["status"], body["rows_total"], body["dry_run"]) == ("pending", 3, False)
    assert body["job"]["id"] == batch.job_id
    assert body["job"]["status"] == "pending"
    assert body["created_by"] == "apiadmin"

    finish(batch)
    detail = api.get(response["Location"], headers=token).json()
    assert (detail["status"], detail["created"], detail["skipped"], detail["failed"]) == (
        "completed",
        3,
        0,
        0,
    )
    assert detail["percent_done"] == 100
    assert detail["problems"] == []
    assert detail["upload_deleted_at"] is not None
    listing = api.get(API_URL, headers=token).json()
    assert [item["id"] for item in listing["results"]] == [batch.pk]
    assert SECRET not in json.dumps([body, detail, listing])


def test_api_detail_lists_problems_and_serves_the_report(client: Client, gws, token) -> None:
    data = api_keys(gws, 1) + b"api_key,Nope,,,,,,,,,k,=1+1,,\r\n"
    client.post(API_URL, {"file": csv_file(data), "dry_run": "1"}, headers=token)
    batch = finish(ImportBatch.objects.get())
    detail = client.get(reverse("imports:api-detail", args=[batch.pk]), headers=token).json()
    assert (detail["would_create"], detail["created"], detail["failed"]) == (1, 0, 1)
    assert detail["problems"] == [
        {
            "row": 3,
            "outcome": "failed",
            "field": "platform",
            "message": "No platform named “Nope”.",
            "text": "row 3, platform: No platform named “Nope”.",
            "type": "api_key",
            "platform": "Nope",
            "login": "=1+1",
        }
    ]
    report = client.get(detail["report_url"], headers=token)
    assert report.status_code == 200
    assert read_csv(report)[1][6] == "'=1+1"
    assert client.get("/api/v1/imports/999/", headers=token).status_code == 404


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"", "The file is empty."),
        (b"type\tplatform\tname\napi_key\tW\tn\n", "The header is separated by tabs"),
        (b"\x89PNG\r\n\x1a\n\x00", "This is a PNG image"),
    ],
)
def test_api_bad_file_is_400_naming_the_problem(client: Client, token, data, expected) -> None:
    response = client.post(API_URL, {"file": csv_file(data)}, headers=token)
    assert response.status_code == 400
    body = response.json()
    assert body["detail"].startswith(f"invalid file: {expected}")
    assert body["errors"]["file"][0].startswith(expected)
    assert nothing_written()


def test_api_refuses_a_body_far_over_the_limit_unread(gws, token, settings) -> None:
    settings.IMPORT_MAX_BYTES = 1024
    api = Client(enforce_csrf_checks=True)
    response = api.post(API_URL, {"file": csv_file(api_keys(gws, 2000))}, headers=token)
    assert response.status_code == 400
    assert response.json()["errors"] == {
        "file": ["The file is larger than the limit of 1 KB; split it into smaller files."]
    }
    assert nothing_written()


def test_api_missing_file_or_bad_dry_run_is_400(client: Client, gws, token) -> None:
    response = client.post(API_URL, {"dry_run": "maybe"}, headers=token)
    assert response.status_code == 400
    assert response.json()["errors"] == {
        "file": ["Send the CSV as the multipart/form-data field “file”."],
        "dry_run": ["Must be true or false."],
    }
    response = client.post(
        API_URL, json.dumps({"file": "a,b"}), content_type="application/json", headers=token
    )
    assert response.status_code == 400
    assert nothing_written()


def test_api_list_pages_with_before(client: Client, gws, token) -> None:
    from imports import api

    batches = [
        ImportBatch.objects.create(filename=f"{n}.csv", status=ImportStatus.COMPLETED)
        for n in range(api.PAGE_SIZE + 2)
    ]
    first = client.get(API_URL, headers=token).json()
    assert len(first["results"]) == api.PAGE_SIZE
    second = client.get(first["next"], headers=token).json()
    assert [item["id"] for item in second["results"]] == [batches[1].pk, batches[0].pk]
    assert second["next"] is None
    assert client.get(API_URL + "?before=x", headers=token).status_code == 400
