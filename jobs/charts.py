"""Settings > Jobs charts of the last 24 hours, laid out as inline SVG geometry in Python so
the template only prints numbers: no chart library, no JavaScript, no build step."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.utils import timezone

from jobs import queries
from jobs.models import JobStatus, JobType

HOURS = 24
# The hourly chart's drawing area, in SVG user units (it scales with the page).
WIDTH, HEIGHT, LEFT, BOTTOM, TOP = 720, 180, 36, 22, 10
SLOT = (WIDTH - LEFT) / HOURS
RATE_ROW, RATE_LABEL, RATE_BAR = 22, 200, 170


@dataclass(frozen=True)
class HourBar:
    """One hour: its jobs and the two stacked rectangles (completed below, failed on top)."""

    start: datetime
    completed: int
    failed: int
    x: float
    width: float
    completed_y: float
    completed_height: float
    failed_y: float
    failed_height: float
    label: str


@dataclass(frozen=True)
class TypeRate:
    """The failure rate of one job type over the whole day, as a horizontal bar."""

    job_type: str
    label: str
    completed: int
    failed: int
    rate: float
    y: float
    width: float

    @property
    def finished(self) -> int:
        return self.completed + self.failed

    @property
    def text(self) -> str:
        return f"{self.rate:.1%} ({self.failed:,} of {self.finished:,})"


@dataclass(frozen=True)
class Charts:
    since: datetime
    hours: list[HourBar]
    peak: int
    completed: int
    failed: int
    rates: list[TypeRate]
    width: int = WIDTH
    height: int = HEIGHT
    plot_left: int = LEFT
    plot_bottom: int = HEIGHT - BOTTOM
    plot_top: int = TOP
    rate_height: int = 0
    rate_label_width: int = RATE_LABEL
    rate_bar_width: int = RATE_BAR


def type_label(job_type: str) -> str:
    try:
        return JobType(job_type).label
    except ValueError:
        return job_type


def build(now: datetime | None = None) -> Charts:
    """Both charts from one aggregate query over the last 24 hours (the current hour last)."""
    now = now or timezone.now()
    first = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=HOURS - 1)
    per_hour: dict[datetime, dict[str, int]] = {}
    per_type: dict[str, dict[str, int]] = {}
    for hour, job_type, status, jobs in queries.list_finished_by_hour(first):
        cell = per_hour.setdefault(hour, {})
        cell[status] = cell.get(status, 0) + jobs
        totals = per_type.setdefault(job_type, {})
        totals[status] = totals.get(status, 0) + jobs
    starts = [first + timedelta(hours=n) for n in range(HOURS)]
    peak = max([sum(per_hour.get(start, {}).values()) for start in starts] + [1])
    plot = HEIGHT - BOTTOM - TOP
    hours = []
    for n, start in enumerate(starts):
        counts = per_hour.get(start, {})
        completed = counts.get(JobStatus.COMPLETED, 0)
        failed = counts.get(JobStatus.FAILED, 0)
        completed_height = plot * completed / peak
        failed_height = plot * failed / peak
        base = HEIGHT - BOTTOM
        hours.append(
            HourBar(
                start=start,
                completed=completed,
                failed=failed,
                x=round(LEFT + n * SLOT + 2, 1),
                width=round(SLOT - 4, 1),
                completed_y=round(base - completed_height, 1),
                completed_height=round(completed_height, 1),
                failed_y=round(base - completed_height - failed_height, 1),
                failed_height=round(failed_height, 1),
                label=start.strftime("%H:00") if n % 3 == 0 else "",
            )
        )
    rates = []
    ranked = sorted(
        per_type.items(),
        key=lambda item: (-failure_rate(item[1]), -sum(item[1].values()), item[0]),
    )
    for n, (job_type, counts) in enumerate(ranked):
        rate = failure_rate(counts)
        rates.append(
            TypeRate(
                job_type=job_type,
                label=type_label(job_type),
                completed=counts.get(JobStatus.COMPLETED, 0),
                failed=counts.get(JobStatus.FAILED, 0),
                rate=rate,
                y=n * RATE_ROW,
                width=round(RATE_BAR * rate, 1),
            )
        )
    return Charts(
        since=first,
        hours=hours,
        peak=peak,
        completed=sum(bar.completed for bar in hours),
        failed=sum(bar.failed for bar in hours),
        rates=rates,
        rate_height=max(1, len(rates)) * RATE_ROW,
    )


def failure_rate(counts: dict[str, int]) -> float:
    finished = counts.get(JobStatus.COMPLETED, 0) + counts.get(JobStatus.FAILED, 0)
    return counts.get(JobStatus.FAILED, 0) / finished if finished else 0.0
