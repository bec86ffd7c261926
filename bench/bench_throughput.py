"""No-op jobs per second through Job row + Celery + Redis + PostgreSQL, beside bare Celery tasks.

One prefork worker (concurrency 2) on a fresh database drains N queued messages of each kind
in turn; the queue is filled while the worker is told to stop consuming, so sending and
draining are timed apart. Run: .venv/bin/python bench/bench_throughput.py [--jobs N]
"""

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import support

OURS = "job via enqueue()"
OURS_BULK = "jobs via enqueue_many()"
BARE_RESULT = "bare task, django-db result"
BARE_COUNTED = "bare task, no result"
KINDS = (BARE_COUNTED, OURS, OURS_BULK, BARE_RESULT)
# The ratios are to the bare no-op task without a result backend.
BARE = BARE_COUNTED
# enqueue_many's batch: what an import chunk or a directory sync's event flush sends at once.
BULK_BATCH = 500
# How often the benchmark looks whether a batch is done: often enough to err by well under 1%
# on a batch of seconds, rarely enough that its own queries take little of the two cores.
POLL_SECONDS = 0.02
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Run:
    kind: str
    n: int
    send_seconds: float
    drain_seconds: float
    # CPU seconds used while draining: by the pool processes, by the worker's main process,
    # and the share of the machine's cores that were busy (anything, PostgreSQL included).
    pool_cpu: float
    main_cpu: float
    machine_busy: float


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of one process, from /proc."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def machine_cpu() -> tuple[int, int]:
    """(busy, total) clock ticks of all cores since boot."""
    with open("/proc/stat") as stat:
        ticks = [int(value) for value in stat.readline().split()[1:]]
    idle = ticks[3] + ticks[4]
    return sum(ticks) - idle, sum(ticks)


class Worker:
    """One `celery worker` subprocess, paused and resumed through Celery's remote control."""

    def __init__(self, env: dict[str, str], concurrency: int) -> None:
        from accesshive.celery import app

        self.app = app
        self.queue = str(app.conf.task_default_queue)
        self.env = env
        self.name = f"bench-{uuid.uuid4().hex[:8]}"
        self.node = f"{self.name}@{os.uname().nodename}"
        self.concurrency = concurrency
        handle, log_path = tempfile.mkstemp(prefix="bench-worker-", suffix=".log")
        os.close(handle)
        self.log_path = Path(log_path)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        args = [
            sys.executable, "-m", "celery", "-A", "accesshive", "worker",
            "--pool", "prefork", "--concurrency", str(self.concurrency),
            "-I", "bench.noop_tasks", "-n", f"{self.name}@%h",
            "--without-mingle", "--without-gossip", "-l", "warning",
        ]  # fmt: skip
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                args,
                cwd=support.ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 60
        while not self.app.control.ping(destination=[self.node], timeout=1.0):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"worker did not start:\n{self.output()}")

    def pause(self) -> None:
        self._control("cancel_consumer")

    def resume(self) -> None:
        self._control("add_consumer")

    def _control(self, command: str) -> None:
        send: Callable[..., Any] = getattr(self.app.control, command)
        if not send(self.queue, destination=[self.node], reply=True, timeout=5):
            raise RuntimeError(f"worker did not answer {command}:\n{self.output()}")

    def cpu(self) -> tuple[float, float]:
        """CPU seconds so far of the pool processes and of the main process."""
        assert self.proc is not None
        with open(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children") as children:
            pool = [int(pid) for pid in children.read().split()]
        return sum(process_cpu(pid) for pid in pool), process_cpu(self.proc.pid)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.log_path.unlink(missing_ok=True)


class Bench:
    def __init__(self, worker: Worker) -> None:
        import redis

        from bench import noop_tasks

        # The bench_noop handler must be registered here too: enqueue() checks the type.
        assert noop_tasks.NOOP_JOB_TYPE == "bench_noop"
        self.worker = worker
        self.redis = redis.Redis.from_url(support.REDIS_URL)

    def queued(self) -> int:
        return int(self.redis.llen(self.worker.queue))

    def measure(self, kind: str, n: int) -> Run:
        """Send n messages while the worker is paused, then time it draining them."""
        send, done = {
            OURS: self.ours,
            OURS_BULK: self.ours_bulk,
            BARE_RESULT: self.bare_result,
            BARE_COUNTED: self.counted,
        }[kind]()
        start = time.perf_counter()
        finished = send(n)
        send_seconds = time.perf_counter() - start
        if self.queued() != n:
            raise RuntimeError(f"expected {n} queued messages, found {self.queued()}")
        pool_before, main_before = self.worker.cpu()
        busy_before, total_before = machine_cpu()
        start = time.perf_counter()
        self.worker.resume()
        deadline = time.monotonic() + max(120, n / 10)
        while not done(finished):
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{kind}: {n} messages not drained in time\n{self.worker.output()}"
                )
            time.sleep(POLL_SECONDS)
        drain_seconds = time.perf_counter() - start
        pool_after, main_after = self.worker.cpu()
        busy_after, total_after = machine_cpu()
        self.worker.pause()
        return Run(
            kind,
            n,
            send_seconds,
            drain_seconds,
            pool_cpu=pool_after - pool_before,
            main_cpu=main_after - main_before,
            machine_busy=(busy_after - busy_before) / (total_after - total_before),
        )

    def ours(self) -> tuple[Callable[[int], Any], Callable[[Any], bool]]:
        from jobs.models import JobStatus, JobStatusCount, Trigger
        from jobs.services import enqueue

        counters = JobStatusCount.objects.filter(job_type="bench_noop")

        def completed() -> int:
            counts = dict(counters.values_list("status", "count"))
            if counts.get(JobStatus.FAILED) or counts.get(JobStatus.RETRYING):
                raise RuntimeError(f"bench_noop jobs failed: {counts}\n{self.worker.output()}")
            return counts.get(JobStatus.COMPLETED, 0)

        target = completed()

        def send(n: int) -> int:
            for _ in range(n):
                enqueue("bench_noop", trigger=Trigger.SYSTEM, trigger_label="bench")
            return target + n

        return send, lambda goal: completed() >= goal

    def ours_bulk(self) -> tuple[Callable[[int], Any], Callable[[Any], bool]]:
        from django.db import transaction

        from jobs.models import Trigger
        from jobs.services import JobRequest, enqueue_many

        send_one, done = self.ours()

        def send(n: int) -> int:
            goal = int(send_one(0))
            for start in range(0, n, BULK_BATCH):
                with transaction.atomic():
                    enqueue_many(
                        [JobRequest("bench_noop") for _ in range(min(BULK_BATCH, n - start))],
                        trigger=Trigger.SYSTEM,
                        trigger_label="bench",
                    )
            return goal + n

        return send, done

    def bare_result(self) -> tuple[Callable[[int], Any], Callable[[Any], bool]]:
        from django_celery_results.models import TaskResult

        from bench.noop_tasks import bare_noop

        def send(n: int) -> list[str]:
            return [bare_noop.delay().id for _ in range(n)]

        def done(ids: list[str]) -> bool:
            # The last result first (a cheap lookup), then all of them.
            results = TaskResult.objects.filter(status="SUCCESS")
            return results.filter(task_id=ids[-1]).exists() and results.filter(
                task_id__in=ids
            ).count() == len(ids)

        return send, done

    def counted(self) -> tuple[Callable[[int], Any], Callable[[Any], bool]]:
        from bench.noop_tasks import COUNTED_KEY, bare_noop_counted

        target = int(self.redis.get(COUNTED_KEY) or 0)

        def send(n: int) -> int:
            for _ in range(n):
                bare_noop_counted.delay()
            return target + n

        return send, lambda goal: int(self.redis.get(COUNTED_KEY) or 0) >= goal


def statements_per_job() -> tuple[int, int]:
    """SQL statements (and of those, BEGIN/COMMIT) the runner issues for a no-op job, run in
    this process; the result backend's statements come on top, as for a bare task."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from jobs import lifecycle, runner
    from jobs.models import Job, JobStatus

    for _ in range(2):  # the second, once what a process loads once is loaded
        job = Job.objects.create(job_type="bench_noop")
        lifecycle.shift_counts("bench_noop", {JobStatus.PENDING: +1})
        with CaptureQueriesContext(connection) as captured:
            runner.execute(
                job.pk, task_id=str(job.celery_task_id), retries=0, max_retries=0, worker="inline"
            )
    sql = [query["sql"] for query in captured.captured_queries]
    return len(sql), sum(1 for text in sql if text in ("BEGIN", "COMMIT"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2000, help="messages per run (default 2000)")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each kind (default 3)")
    parser.add_argument("--warmup", type=int, default=200, help="messages per warm-up run")
    parser.add_argument("--concurrency", type=int, default=2)
    args = parser.parse_args()
    support.require_services(redis=True)

    db_name = f"ah_bench_tp_{os.getpid()}"
    print(f"machine: {support.machine_summary()}")
    started = time.monotonic()
    with support.django_on_fresh_database(db_name) as env:
        from django.conf import settings

        worker = Worker(env, args.concurrency)
        bench = Bench(worker)
        bench.redis.flushdb()
        runs: list[Run] = []
        try:
            worker.start()
            worker.pause()
            for kind in KINDS:
                bench.measure(kind, args.warmup)
            for _ in range(args.repeats):
                runs += [bench.measure(kind, args.jobs) for kind in KINDS]
        finally:
            worker.stop()
            bench.redis.flushdb()
        statements, transaction_control = statements_per_job()
        reuse = settings.CELERY_DB_REUSE_MAX
    print(
        f"{args.jobs} messages a run, {args.repeats} runs of each kind alternating, after a "
        f"{args.warmup}-message warm-up; prefork concurrency {args.concurrency}, "
        f"CELERY_DB_REUSE_MAX={reuse}, prefetch 1, acks_late, task events on (as in settings)"
    )
    report(runs)
    print(
        f"\nSQL statements the runner issues per no-op job: {statements} "
        f"({transaction_control} of them BEGIN/COMMIT), before the result backend's"
    )
    print(f"total {time.monotonic() - started:.0f} s")
    return 0


def report(runs: list[Run]) -> None:
    def of(kind: str) -> list[Run]:
        return [run for run in runs if run.kind == kind]

    def med(kind: str, value: Callable[[Run], float]) -> float:
        return support.median([value(run) for run in of(kind)])

    for title, attr in (
        ("drain: messages queued -> all finished, one worker", "drain_seconds"),
        (
            "send: enqueue() / .delay() one by one (enqueue_many: batches of "
            f"{BULK_BATCH}, one transaction each), from this process",
            "send_seconds",
        ),
    ):
        print(f"\n{title}")

        def per_second(run: Run, attr: str = attr) -> float:
            return run.n / float(getattr(run, attr))

        bare = med(BARE, per_second)
        with_result = med(BARE_RESULT, per_second)
        rows = []
        for kind in KINDS:
            rates = ", ".join(f"{per_second(run):.0f}" for run in of(kind))
            median = med(kind, per_second)
            ratios = [f"{median / bare:.2f}", f"{median / with_result:.2f}"]
            rows.append([kind, f"{median:.0f}", rates, *ratios])
        support.print_table(
            ["", "median /s", "runs /s", "ratio to bare", "ratio to bare+result"], rows
        )

    print("\nCPU while draining (medians): ms per message, and the machine's busy share")
    bare_cpu = med(BARE, lambda run: run.pool_cpu / run.n * 1000)
    rows = [
        [
            kind,
            f"{med(kind, lambda run: run.pool_cpu / run.n * 1000):.2f}",
            f"{med(kind, lambda run: run.pool_cpu / run.n * 1000) / bare_cpu:.1f}x",
            f"{med(kind, lambda run: run.main_cpu / run.n * 1000):.1f}",
            f"{med(kind, lambda run: run.machine_busy) * 100:.0f}%",
        ]
        for kind in KINDS
    ]
    support.print_table(["", "pool processes", "vs bare", "worker main", "cores busy"], rows)


if __name__ == "__main__":
    sys.exit(main())
