"""directory_sync of an LDAP source through ldap3 against a real slapd the test starts:
users, groups, memberships, paging, movers, leavers, bad credentials and a lost server."""

from collections.abc import Iterator

import pytest

from directory.models import (
    DirectoryEvent,
    DirectoryGroup,
    DirectoryMembership,
    DirectoryUser,
    EventKind,
    SyncRun,
)
from jobs.models import JobStatus
from tests.directory_support import ldap_source, result, running_slapd, sync
from tests.slapd import BASE_DN, Slapd, move

pytestmark = pytest.mark.django_db

RESEARCH = f"cn=research,ou=Groups,{BASE_DN}"
SALES = f"cn=sales,ou=Groups,{BASE_DN}"


@pytest.fixture
def slapd() -> Iterator[Slapd]:
    yield from running_slapd()


@pytest.fixture
def people(slapd: Slapd) -> dict[str, str]:
    """Ten people: Ada leads Research; Bob works for her; Carol is in Sales; seven more."""
    ada = slapd.add_person(
        "ada",
        given="Ada",
        family="Lovelace",
        department="Research",
        title="Lead",
        groups=[RESEARCH],
    )
    bob = slapd.add_person(
        "bob",
        given="Bob",
        family="Babbage",
        department="Research",
        title="Engineer",
        manager=ada,
        groups=[RESEARCH],
    )
    carol = slapd.add_person(
        "carol", ou="Sales", given="Carol", family="Shaw", department="Sales", groups=[SALES]
    )
    others = [slapd.add_person(f"user{n}", ou="Sales", department="Sales") for n in range(7)]
    slapd.add_group("research", [ada, bob])
    slapd.add_group("sales", [carol])
    return {
        "ada": ada,
        "bob": bob,
        "carol": carol,
        **{f"user{n}": dn for n, dn in enumerate(others)},
    }


def users(source) -> dict[str, DirectoryUser]:
    return {user.username: user for user in DirectoryUser.objects.filter(source=source)}


def memberships(source) -> set[tuple[str, str]]:
    return set(
        DirectoryMembership.objects.filter(source=source).values_list(
            "user__username", "group__name"
        )
    )


def test_first_sync_stores_users_groups_and_memberships_page_by_page(slapd, people) -> None:
    source = ldap_source(slapd, page_size=3)
    job = sync(source)

    assert job.status == JobStatus.COMPLETED, job.error_message
    outcome = result(job)
    assert outcome["baseline"] is True
    assert (outcome["users"], outcome["groups"], outcome["errors"]) == (10, 2, 0)
    # 10 users in pages of 3 (4 pages), then 2 groups (1 page): the search was paged.
    assert outcome["pages_read"] == 5
    run = SyncRun.objects.get(pk=outcome["run"])
    assert run.status == SyncRun.Status.COMMITTED
    assert (run.users_read, run.groups_read, run.memberships_read) == (10, 2, 3)

    found = users(source)
    assert set(found) == {"ada", "bob", "carol", *(f"user{n}" for n in range(7))}
    bob = found["bob"]
    assert (bob.email, bob.given_name, bob.family_name) == ("bob@example.com", "Bob", "Babbage")
    assert (bob.department, bob.title, bob.org_unit) == ("Research", "Engineer", "/Staff/Research")
    assert bob.manager == f"uid=ada,ou=research,ou=staff,{BASE_DN}".lower()
    assert len(bob.external_id) == 36  # entryUUID, the immutable id
    assert not bob.disabled
    assert set(DirectoryGroup.objects.filter(source=source).values_list("name", "email")) == {
        ("research", "research@example.com"),
        ("sales", "sales@example.com"),
    }
    assert memberships(source) == {("ada", "research"), ("bob", "research"), ("carol", "sales")}
    # The first sync is the baseline: nobody "joined".
    assert not DirectoryEvent.objects.exists()


def test_memberships_can_be_read_from_the_groups_member_attribute(slapd, people) -> None:
    source = ldap_source(slapd, membership_on="group", member_of="")
    job = sync(source)
    assert job.status == JobStatus.COMPLETED, job.error_message
    assert memberships(source) == {("ada", "research"), ("bob", "research"), ("carol", "sales")}


def test_nested_groups_from_the_member_attribute_are_expanded(slapd, people) -> None:
    slapd.add_group("everyone", [RESEARCH, people["carol"]])
    source = ldap_source(slapd, membership_on="group", member_of="")

    job = sync(source)

    assert job.status == JobStatus.COMPLETED, job.error_message
    # Ada and Bob are in research, which is inside everyone.
    assert memberships(source) == {
        ("ada", "research"),
        ("bob", "research"),
        ("carol", "sales"),
        ("ada", "everyone"),
        ("bob", "everyone"),
        ("carol", "everyone"),
    }


def test_a_second_sync_with_no_changes_makes_no_events(slapd, people) -> None:
    source = ldap_source(slapd)
    sync(source)
    before = list(DirectoryUser.objects.filter(source=source).values())
    job = sync(source)

    outcome = result(job)
    assert outcome["baseline"] is False
    assert (outcome["joiners"], outcome["movers"], outcome["leavers"]) == (0, 0, 0)
    assert not DirectoryEvent.objects.exists()
    assert list(DirectoryUser.objects.filter(source=source).values()) == before


def test_changed_attributes_and_groups_make_a_mover(slapd, people) -> None:
    source = ldap_source(slapd)
    sync(source)
    slapd.modify(people["bob"], department="Sales", title="Account manager")
    slapd.leave(people["bob"], RESEARCH)
    bob = move(slapd, people["bob"], "Sales")  # a new DN, the same entryUUID
    slapd.join(bob, SALES)

    outcome = result(sync(source))

    assert (outcome["joiners"], outcome["movers"], outcome["leavers"]) == (0, 1, 0)
    (event,) = DirectoryEvent.objects.all()
    assert (event.kind, event.label) == (EventKind.MOVER, "bob@example.com")
    changes = event.changes
    assert changes["department"] == ["Research", "Sales"]
    assert changes["title"] == ["Engineer", "Account manager"]
    assert changes["org_unit"] == ["/Staff/Research", "/Staff/Sales"]
    assert [g["name"] for g in changes["groups"]["added"]] == ["sales"]
    assert [g["name"] for g in changes["groups"]["removed"]] == ["research"]
    # No rule yet: the event is recorded, and no job acts on it.
    assert event.status == DirectoryEvent.Status.SKIPPED
    assert event.job is None
    stored = users(source)["bob"]
    assert (stored.department, stored.org_unit) == ("Sales", "/Staff/Sales")
    assert ("bob", "sales") in memberships(source)
    assert ("bob", "research") not in memberships(source)


def test_a_disabled_user_and_a_deleted_one_are_leavers_a_new_one_a_joiner(slapd, people) -> None:
    source = ldap_source(slapd)
    for n in range(10):  # 20 people, so two leavers stay within the 10% brake
        slapd.add_person(f"extra{n}")
    sync(source)
    # Active Directory's way: userAccountControl 514 = NORMAL_ACCOUNT (512) | ACCOUNTDISABLE (2).
    slapd.modify(people["carol"], userAccountControl=514)
    slapd.delete(people["user0"])
    slapd.add_person("dave", given="Dave", family="New")

    outcome = result(sync(source))

    assert (outcome["joiners"], outcome["movers"], outcome["leavers"]) == (1, 0, 2)
    kinds = {e.label: (e.kind, e.changes) for e in DirectoryEvent.objects.all()}
    assert kinds == {
        "carol@example.com": (EventKind.LEAVER, {"state": ["active", "disabled"]}),
        "user0@example.com": (EventKind.LEAVER, {"state": ["active", "deleted"]}),
        "dave@example.com": (EventKind.JOINER, {"state": [None, "active"]}),
    }
    stored = users(source)
    assert stored["carol"].disabled
    assert not stored["carol"].deleted
    assert stored["user0"].deleted
    # A leaver's memberships end with them.
    assert ("user0", "sales") not in memberships(source)


def test_disabled_can_be_mapped_to_another_attribute_and_value(slapd, people) -> None:
    """OpenLDAP has no userAccountControl: any attribute can say "disabled", here
    employeeType: disabled (inetOrgPerson has it)."""
    source = ldap_source(
        slapd, disabled_attribute="employeeType", disabled_match="equals", disabled_value="Disabled"
    )
    sync(source)
    slapd.modify(people["user1"], employeeType="disabled")

    outcome = result(sync(source))

    assert outcome["leavers"] == 1
    assert DirectoryEvent.objects.get().label == "user1@example.com"


def test_an_entry_missing_an_attribute_is_listed_and_the_rest_synced(slapd, people) -> None:
    source = ldap_source(slapd)
    slapd.modify(people["user3"], sAMAccountName=None)

    job = sync(source)

    assert job.status == JobStatus.COMPLETED, job.error_message
    outcome = result(job)
    assert (outcome["users"], outcome["errors"]) == (9, 1)
    (problem,) = outcome["problems"]
    assert problem["object"] == people["user3"]
    assert "missing attribute sAMAccountName" in problem["message"]
    assert "user3" not in users(source)


def test_a_wrong_bind_password_names_the_source_and_keeps_the_snapshot(slapd, people) -> None:
    source = ldap_source(slapd)
    sync(source)
    snapshot = list(DirectoryUser.objects.filter(source=source).values())
    from directory.services import set_bind_password

    set_bind_password(source, "not-the-password")
    slapd.delete(people["user2"])

    job = sync(source)

    assert job.status == JobStatus.FAILED
    assert job.attempt_count == 1  # a rejected bind is not retried
    assert "Corp AD" in job.error_message
    assert "invalidCredentials" in job.error_message
    assert "not-the-password" not in job.error_message
    assert list(DirectoryUser.objects.filter(source=source).values()) == snapshot
    run = SyncRun.objects.filter(source=source).first()
    assert run is not None
    assert run.status == SyncRun.Status.FAILED
    assert "invalidCredentials" in run.message


def test_an_unreachable_server_names_the_source_retries_and_keeps_the_snapshot(
    slapd, people
) -> None:
    source = ldap_source(slapd)
    sync(source)
    snapshot = list(DirectoryUser.objects.filter(source=source).values())
    slapd.stop()

    job = sync(source)

    assert job.status == JobStatus.RETRYING
    assert "Corp AD" in job.error_message
    assert f"LDAP server {slapd.url} unreachable" in job.error_message
    assert list(DirectoryUser.objects.filter(source=source).values()) == snapshot
