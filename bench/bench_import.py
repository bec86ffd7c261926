"""A 100,000-row CSV import on PostgreSQL: upload check, dry run, real import, peak memory,
beside csv.reader over the same file and a bare COPY of as many identity rows.

The file mixes API keys, external shared credentials, OAuth clients and service-account keys
(vault writes) with people and managed shared accounts on a Google Workspace platform
(provisioning jobs), and 1% invalid rows. Jobs run in this process through the engine's runner,
one after another, as a worker would run them; their on-commit messages go to Celery's
in-memory broker (memory://), so no worker or Redis is needed and nothing consumes them.
Memory is the process's resident size, sampled every 50 ms during each phase.
Run: .venv/bin/python bench/bench_import.py [--rows N]
"""

import argparse
import cProfile
import csv
import io
import json
import os
import pstats
import random
import shutil
import sys
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import support

# (identity type, share in percent); the rest of the columns follow from the type.
TYPE_MIX = [
    ("api_key", 45),
    ("shared_credential_external", 30),
    ("oauth_client", 10),
    ("service_account", 5),
    ("human_interactive", 8),
    ("shared_credential_managed", 2),
]
INVALID_EVERY = 100  # every 100th row is a person on the wrong domain
DOMAIN = "bench.example"
PLATFORM = "Bench Workspace"


# --- measuring ------------------------------------------------------------------------------


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def hwm_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


@dataclass
class Phase:
    name: str
    seconds: float = 0.0
    rss_before: int = 0
    rss_peak: int = 0
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rss_growth(self) -> int:
        return self.rss_peak - self.rss_before


@contextmanager
def measured(phases: list[Phase], name: str) -> Iterator[Phase]:
    """Time a phase and sample the process's resident memory while it runs."""
    phase = Phase(name, rss_before=rss_bytes())
    peak = [phase.rss_before]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.05):
            peak[0] = max(peak[0], rss_bytes())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.perf_counter()
    try:
        yield phase
    finally:
        phase.seconds = time.perf_counter() - started
        stop.set()
        sampler.join()
        phase.rss_peak = max(peak[0], rss_bytes())
        phases.append(phase)
        print(f"  {name}: {phase.seconds:.1f} s, peak RSS {mb(phase.rss_peak)}", flush=True)


def mb(size: float) -> str:
    return f"{size / 1024 / 1024:.0f} MB"


# --- the file -------------------------------------------------------------------------------


def service_account_key(n: int) -> str:
    return json.dumps(
        {
            "type": "service_account",
            "project_id": "bench",
            "private_key_id": f"{n:040x}",
            "private_key": "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC"
            f"{n:012d}\n-----END PRIVATE KEY-----\n",
            "client_email": f"robot-{n}@bench.iam.gserviceaccount.com",
            "client_id": str(10**12 + n),
            "token_uri": "https://oauth2.googleapis.com/token",
        }
    )


def row_for(n: int, identity_type: str) -> dict[str, str]:
    secret = f"bench-secret-{n:07d}-{random.getrandbits(64):016x}"
    cells: dict[str, str] = {"type": identity_type, "platform": PLATFORM}
    if identity_type == "api_key":
        cells.update(name=f"key-{n}", api_key=secret)
    elif identity_type == "shared_credential_external":
        cells.update(username=f"svc-{n}", password=secret, display_name=f"Service {n}")
    elif identity_type == "oauth_client":
        cells.update(client_id=f"client-{n}", client_secret=secret)
    elif identity_type == "service_account":
        cells.update(json_key=service_account_key(n), display_name=f"Robot {n}")
    elif identity_type == "human_interactive":
        domain = "elsewhere.example" if n % INVALID_EVERY == 0 else DOMAIN
        cells.update(
            given_name=f"Given{n}",
            family_name=f"Family{n}",
            email=f"person{n}@{domain}",
            org_unit_path="/Bench",
        )
    else:
        cells.update(email=f"shared{n}@{DOMAIN}", display_name=f"Shared {n}")
    return cells


def write_file(path: Path, rows: int) -> dict[str, int]:
    """Write the CSV row by row; returns how many rows of each type it holds."""
    from imports.csvfile import COLUMNS

    random.seed(42)
    types = [name for name, share in TYPE_MIX for _ in range(share)]
    counts: dict[str, int] = {}
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(COLUMNS)
        for n in range(rows):
            identity_type = "human_interactive" if n % INVALID_EVERY == 0 else types[n % 100]
            counts[identity_type] = counts.get(identity_type, 0) + 1
            cells = row_for(n, identity_type)
            writer.writerow([cells.get(name, "") for name in COLUMNS])
    return counts


# --- running the import ---------------------------------------------------------------------


def deliver(job_id: int) -> None:
    """One delivery of a job through the engine's runner, as the worker's task makes it."""
    from django.conf import settings

    from jobs import runner
    from jobs.models import Job

    job = Job.objects.get(pk=job_id)
    runner.execute(
        job.pk,
        task_id=str(job.celery_task_id),
        retries=job.retries,
        max_retries=settings.JOB_MAX_RETRIES,
        worker="bench",
    )


def run_import(batch_id: int) -> int:
    """Deliver the import's job and each continuation until it finishes; returns the jobs."""
    from imports.models import ImportBatch

    jobs = 0
    while True:
        batch = ImportBatch.objects.get(pk=batch_id)
        if not batch.is_active:
            assert batch.status == "completed", batch.error_message
            return jobs
        assert batch.job_id is not None
        deliver(batch.job_id)
        jobs += 1


def upload(path: Path, *, dry_run: bool, actor: Any) -> Any:
    from django.core.files import File

    from imports import services

    with path.open("rb") as handle:
        return services.start_import(
            File(handle, name=path.name), filename=path.name, dry_run=dry_run, actor=actor
        )


def setup_platform() -> Any:
    from identities.models import IdentityProvider, Platform

    provider = IdentityProvider.objects.create(
        name="Bench IdP",
        scim_base_url="https://idp.bench.example/scim/v2",
        token_ref="vault:identity-providers/0/scim-token#1",  # noqa: S106 - a reference
    )
    return Platform.objects.create(
        name=PLATFORM,
        kind=Platform.Kind.GOOGLE_WORKSPACE,
        identity_provider=provider,
        primary_domain=DOMAIN,
        admin_email=f"admin@{DOMAIN}",
        service_account_key_ref="vault:platforms/0/service-account-key#1",
    )


def count_sends() -> Callable[[], int]:
    """Count the job messages published (to memory://), and fail loudly if one is not."""
    import logging

    from jobs import services as job_services

    sent = [0]
    original = job_services.send

    def send(job_id: int, **kwargs: Any) -> None:
        sent[0] += 1
        original(job_id, **kwargs)

    job_services.send = send

    class FailOnSendError(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.getMessage() == "jobs.send.failed":
                raise SystemExit(f"a job message could not be sent: {record.exc_info}")

    logging.getLogger("jobs.services").addHandler(FailOnSendError(logging.ERROR))
    return lambda: sent[0]


# --- bare tools -----------------------------------------------------------------------------


def bare_csv_reader(path: Path) -> int:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        return sum(1 for _ in csv.reader(handle)) - 1


def bare_copy(rows: int, platform_id: int, user_id: int) -> float:
    """COPY ``rows`` identity rows into a copy of the identities table; returns seconds."""
    columns = (
        "identity_type, platform_id, display_name, login, given_name, family_name, "
        "org_unit_path, status, created_by_id, gws_user_id, idp_user_id, secret_ref, "
        "created_at, updated_at"
    )
    with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS bench_identity_copy")
        conn.execute("CREATE TABLE bench_identity_copy (LIKE identities_identity INCLUDING ALL)")
        started = time.perf_counter()
        statement = f"COPY bench_identity_copy ({columns}) FROM STDIN"
        with conn.transaction(), conn.cursor() as cursor, cursor.copy(statement) as copy:
            for n in range(rows):
                copy.write_row(
                    (
                        "api_key",
                        platform_id,
                        f"key-{n}",
                        f"key-{n}",
                        "",
                        "",
                        "",
                        "provisioned",
                        user_id,
                        "",
                        "",
                        f"vault:identities/{n}/credential#1",
                        "2026-01-01T00:00:00Z",
                        "2026-01-01T00:00:00Z",
                    )
                )
        seconds = time.perf_counter() - started
        conn.execute("DROP TABLE bench_identity_copy")
    return seconds


def queries_per_row(actor: Any) -> dict[str, float]:
    """SQL statements per created row, by type, from a small separate import of each type."""
    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from imports import services
    from imports.csvfile import COLUMNS

    result: dict[str, float] = {}
    for identity_type, _share in TYPE_MIX:
        text = io.StringIO()
        writer = csv.writer(text)
        writer.writerow(COLUMNS)
        for n in range(100):
            cells = row_for(10_000_000 + n + 1000 * len(result), identity_type)
            writer.writerow([cells.get(name, "") for name in COLUMNS])
        batch = services.start_import(
            SimpleUploadedFile("q.csv", text.getvalue().encode()),
            filename="q.csv",
            dry_run=False,
            actor=actor,
        )
        with CaptureQueriesContext(connection) as captured:
            run_import(batch.pk)
        result[identity_type] = len(captured.captured_queries) / 100
    return result


def profile_top(path: Path, actor: Any, rows: int) -> str:
    """Where an import's time goes: the top functions of a profiled import of ``rows`` rows."""
    from imports.csvfile import COLUMNS

    sample = path.with_name("profile.csv")
    with path.open(newline="") as source, sample.open("w", newline="") as out:
        reader, writer = csv.reader(source), csv.writer(out)
        writer.writerow(next(reader))
        for index, row in enumerate(reader):
            if index >= rows:
                break
            row[COLUMNS.index("platform")] = PLATFORM
            # Fresh logins: the big import created these rows already.
            for name in ("name", "username", "client_id", "email"):
                position = COLUMNS.index(name)
                if row[position]:
                    row[position] = "p-" + row[position]
            writer.writerow(row)
    batch = upload(sample, dry_run=False, actor=actor)
    profiler = cProfile.Profile()
    profiler.enable()
    run_import(batch.pk)
    profiler.disable()
    text = io.StringIO()
    stats = pstats.Stats(profiler, stream=text)
    stats.sort_stats("cumulative").print_stats(28)
    return text.getvalue()


# --- main -----------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000, help="rows in the file")
    parser.add_argument("--profile-rows", type=int, default=500, help="rows to profile")
    args = parser.parse_args()
    support.require_services(redis=False)

    from vault.crypto import generate_key_line

    os.environ["ACCESSHIVE_VAULT_KEYS"] = generate_key_line("bench")
    db_name = f"ah_bench_import_{os.getpid()}"
    print(f"machine: {support.machine_summary()}")
    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="ah-bench-import-"))
    try:
        return measure_all(args.rows, args.profile_rows, db_name, workdir, started)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def measure_all(rows: int, profile_rows: int, db_name: str, workdir: Path, started: float) -> int:
    phases: list[Phase] = []
    path = workdir / "identities.csv"
    with support.django_on_fresh_database(db_name):
        from accesshive.celery import app

        # Messages go nowhere a worker listens: the benchmark times publishing, not work.
        # Celery reads this variable before its own setting, so set both.
        os.environ["CELERY_BROKER_URL"] = "memory://"
        app.conf.update(broker_url="memory://")
        from django.conf import settings
        from django.contrib.auth import get_user_model

        from identities.models import Identity
        from imports import csvfile, services
        from jobs.models import Job
        from vault.models import EncryptedSecret

        sent = count_sends()
        user = get_user_model().objects.create_superuser("bench", "bench@example.com", None)
        platform = setup_platform()
        counts = write_file(path, rows)
        size = path.stat().st_size
        print(
            f"file: {rows:,} rows, {mb(size)}; "
            + ", ".join(f"{name} {count:,}" for name, count in sorted(counts.items()))
        )
        print(
            f"settings: chunk {services.chunk_rows()} rows per transaction, slice "
            f"{services.slice_seconds():.0f} s per job (JOB_TIMEOUT {settings.JOB_TIMEOUT} s); "
            f"broker {app.connection_for_write().as_uri()}"
        )

        with measured(phases, "csv.reader over the file (bare)") as phase:
            assert bare_csv_reader(path) == rows
        bare_read = phase.seconds

        tracemalloc.start()
        with measured(phases, "upload check + store, under tracemalloc") as phase:
            with path.open("rb") as handle:
                summary = csvfile.scan(services.read_pieces(_file(handle)), max_rows=rows)
            phase.extra["tracemalloc_peak"] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert summary.rows == rows

        with measured(phases, "upload: check + store (dry run)") as phase:
            dry = upload(path, dry_run=True, actor=user)
        with measured(phases, "dry run: validate every row") as phase:
            phase.extra["jobs"] = run_import(dry.pk)
        dry.refresh_from_db()
        dry_seconds = phase.seconds
        assert Identity.objects.count() == 0
        print(f"    would create {dry.created:,}, skipped {dry.skipped:,}, failed {dry.failed:,}")

        sent_before = sent()
        with measured(phases, "upload: check + store (import)") as phase:
            real = upload(path, dry_run=False, actor=user)
        with measured(phases, "import: validate, create, vault, enqueue") as phase:
            phase.extra["jobs"] = run_import(real.pk)
        real.refresh_from_db()
        import_seconds = phase.seconds
        identities = Identity.objects.count()
        secrets = EncryptedSecret.objects.count()
        provisioning = Job.objects.exclude(job_type="bulk_import").count()
        published = sent() - sent_before
        print(
            f"    created {real.created:,} identities ({secrets:,} vault secrets, "
            f"{provisioning:,} provisioning jobs), skipped {real.skipped:,}, "
            f"failed {real.failed:,}; {published:,} messages published, which memory:// "
            "keeps in this process (most of the import's RSS growth)"
        )
        assert identities == real.created == dry.created
        assert real.failed == dry.failed

        with measured(phases, "bare COPY of as many identity rows") as phase:
            copy_seconds = bare_copy(rows, platform.pk, user.pk)
        phase.seconds = copy_seconds

        per_row = queries_per_row(user)
        profile = profile_top(path, user, profile_rows)

    report(phases, rows, bare_read, dry_seconds, import_seconds, copy_seconds, per_row)
    print(f"\nprofile of a {profile_rows:,}-row import, by cumulative time:\n{profile}")
    print(f"process peak RSS (VmHWM) {mb(hwm_bytes())}; total {time.monotonic() - started:.0f} s")
    return 0


def _file(handle: Any) -> Any:
    from django.core.files import File

    return File(handle)


def report(
    phases: list[Phase],
    rows: int,
    bare_read: float,
    dry_seconds: float,
    import_seconds: float,
    copy_seconds: float,
    per_row: dict[str, float],
) -> None:
    print(f"\n{rows:,} rows; RSS growth is the peak during the phase over the size before it")
    support.print_table(
        ["phase", "seconds", "rows/s", "peak RSS", "RSS growth", "jobs"],
        [
            [
                phase.name,
                f"{phase.seconds:.1f}",
                f"{rows / phase.seconds:,.0f}" if phase.seconds else "-",
                mb(phase.rss_peak),
                mb(phase.rss_growth),
                str(phase.extra.get("jobs", "")),
            ]
            for phase in phases
        ],
    )
    traced = next(p for p in phases if "tracemalloc_peak" in p.extra)
    print(f"tracemalloc peak of the upload check: {traced.extra['tracemalloc_peak'] / 1e6:.1f} MB")
    print(
        f"dry run / csv.reader: {dry_seconds / bare_read:.0f}x; "
        f"import / COPY: {import_seconds / copy_seconds:.0f}x; "
        f"per row: dry run {dry_seconds / rows * 1000:.2f} ms, import "
        f"{import_seconds / rows * 1000:.2f} ms"
    )
    print(
        "SQL statements per created row: "
        + ", ".join(f"{name} {count:.1f}" for name, count in per_row.items())
    )


if __name__ == "__main__":
    sys.exit(main())
