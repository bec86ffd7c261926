"""Reading violations for the list page and the API: filters and keyset paging."""

from collections.abc import Mapping
from dataclasses import dataclass

from policies.models import Policy, Violation, ViolationStatus
from web.pages import InvalidFilterError, QueryForm, choice_parameter, id_parameter, parse_id_cursor

PAGE_SIZE = 50


@dataclass(frozen=True)
class ViolationFilters:
    status: str = ""
    policy: Policy | None = None

    def as_query(self) -> dict[str, str]:
        query = {"status": self.status, "policy": str(self.policy.pk) if self.policy else ""}
        return {key: value for key, value in query.items() if value}


class ViolationFilterForm(QueryForm):
    status = choice_parameter("status", ViolationStatus.values, "violation status")
    policy = id_parameter("policy", "policy")


def parse_filters(params: Mapping[str, str]) -> ViolationFilters:
    values = ViolationFilterForm.parse(params)
    policy = None
    if values["policy"] is not None:
        policy = Policy.objects.filter(pk=values["policy"]).first()
        if policy is None:
            raise InvalidFilterError("policy", f"no policy with id {values['policy']}")
    return ViolationFilters(status=values["status"], policy=policy)


def parse_before(params: Mapping[str, str]) -> int | None:
    return parse_id_cursor(params, "violation")


def list_violations(
    filters: ViolationFilters, *, before: int | None
) -> tuple[list[Violation], int | None]:
    """One page, newest first, and the cursor of the next page (None on the last)."""
    rows = Violation.objects.select_related("policy", "decided_by").order_by("-id")
    if filters.status:
        rows = rows.filter(status=filters.status)
    if filters.policy is not None:
        rows = rows.filter(policy=filters.policy)
    if before is not None:
        rows = rows.filter(pk__lt=before)
    page = list(rows[: PAGE_SIZE + 1])
    more = len(page) > PAGE_SIZE
    page = page[:PAGE_SIZE]
    return page, (page[-1].pk if more else None)


def get_violation(violation_id: int) -> Violation | None:
    return Violation.objects.select_related("policy").filter(pk=violation_id).first()
