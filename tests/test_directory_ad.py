"""directory_sync against a real Active Directory domain controller (Samba AD DC, started by
tests/samba_ad.py): LDAPS and StartTLS with the source's own CA pinned, objectGUID as the
identity, disabled accounts, nested groups expanded, movers between OUs, AD's paging."""

from collections.abc import Iterator

import pytest

from directory import services
from directory.models import (
    AD_MAPPING,
    DirectoryEvent,
    DirectoryMembership,
    DirectoryUser,
    EventKind,
    IdentitySource,
)
from identities.models import Identity, Platform
from identities.services import create_identity_provider, create_platform
from jobs.models import Job, JobStatus
from sandbox import google_directory, scim
from tests.directory_support import result, running_idp, sync
from tests.inline import deliver
from tests.samba_ad import (
    READER_DN,
    READER_PASSWORD,
    CertificateAuthority,
    SambaAD,
    Tree,
    require_samba,
)

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def samba() -> Iterator[SambaAD]:
    server = SambaAD(*require_samba()).start()
    yield server
    server.stop()


@pytest.fixture
def tree(samba: SambaAD) -> Tree:
    return samba.tree()


def ad_source(
    samba: SambaAD, tree: Tree, *, url: str = "", ca: str | None = None, **fields: object
) -> IdentitySource:
    """A source as an admin sets one up for AD: Active Directory's default mapping, a
    read-only account, the company CA pinned."""
    return services.create_source(
        name=f"Corp AD {tree.tag}",
        kind=IdentitySource.Kind.LDAP,
        ldap_url=url or samba.ldaps_url,
        ldap_bind_dn=READER_DN,
        bind_password=READER_PASSWORD,
        ldap_base_dn=tree.dn,
        ldap_ca_certificate=samba.ca.pem if ca is None else ca,
        ldap_mapping=dict(AD_MAPPING),
        **{"page_size": 2, **fields},
    )


def users(source: IdentitySource) -> dict[str, DirectoryUser]:
    return {user.email: user for user in DirectoryUser.objects.filter(source=source)}


def memberships(source: IdentitySource) -> set[tuple[str, str]]:
    return set(
        DirectoryMembership.objects.filter(source=source).values_list("user__email", "group__name")
    )


def org(tree: Tree, ou: str) -> str:
    return f"/Staff/{tree.tag}/{ou}"


@pytest.fixture
def people(tree: Tree) -> dict[str, str]:
    """Seven people (more than three pages of two); Bob's account is disabled; Ada is in
    "platform", a group inside "engineering"; Carol is directly in "engineering"."""
    dns = {
        "ada": tree.add_person("ada", given="Ada", family="Lovelace", department="Research"),
        "bob": tree.add_person("bob", given="Bob", family="Babbage", disabled=True),
        "carol": tree.add_person("carol", ou="Sales", given="Carol", family="Shaw"),
    }
    for n in range(4):
        dns[f"user{n}"] = tree.add_person(f"user{n}", ou="Sales")
    platform = tree.add_group("platform", [dns["ada"]])
    dns["platform"] = platform
    dns["engineering"] = tree.add_group("engineering", [platform, dns["carol"]])
    return dns


def test_ldaps_sync_reads_users_disabled_accounts_and_nested_groups(samba, tree, people):
    source = ad_source(samba, tree)

    job = sync(source)

    assert job.status == JobStatus.COMPLETED, job.error_message
    outcome = result(job)
    assert (outcome["users"], outcome["groups"], outcome["errors"]) == (7, 2, 0)
    # Seven users in pages of two, two groups in a page of two: AD's paged results,
    # followed. Unlike slapd, AD hands back a cookie when a page is exactly full, and the
    # page after it is empty, so the groups take two.
    assert outcome["pages_read"] == 2 + 4
    found = users(source)
    assert set(found) == {
        "ada@ah.test",
        "bob@ah.test",
        "carol@ah.test",
        *(f"user{n}@ah.test" for n in range(4)),
    }
    ada = found["ada@ah.test"]
    assert (ada.username, ada.given_name, ada.family_name) == (tree.sam("ada"), "Ada", "Lovelace")
    assert ada.department == "Research"
    assert ada.org_unit == org(tree, "Research")
    # objectGUID, read as AD's binary GUID, is the identity.
    assert ada.external_id == samba.guid(people["ada"])
    assert found["bob@ah.test"].disabled
    assert not ada.disabled
    # Ada is in platform, which is inside engineering: she is a member of both.
    assert memberships(source) == {
        ("ada@ah.test", "platform"),
        ("ada@ah.test", "engineering"),
        ("carol@ah.test", "engineering"),
    }


def test_starttls_on_the_ldap_port_with_the_pinned_ca(samba, tree, people):
    source = ad_source(samba, tree, url=samba.ldap_url, ldap_start_tls=True)

    job = sync(source)

    assert job.status == JobStatus.COMPLETED, job.error_message
    assert len(users(source)) == 7


def test_ad_refuses_a_password_bind_without_encryption(samba, tree, people):
    source = ad_source(samba, tree, url=samba.ldap_url)

    job = sync(source)

    assert job.status == JobStatus.FAILED
    assert f"Directory source {source.name}" in job.error_message
    assert "strongerAuthRequired" in job.error_message
    assert "Transport encryption required" in job.error_message
    assert READER_PASSWORD not in job.error_message
    assert job.attempts.count() == 1  # not retried: it cannot work until the admin fixes it
    assert not DirectoryUser.objects.exists()


@pytest.mark.parametrize(
    "ca", [pytest.param("", id="system-cas"), pytest.param("other", id="another-ca")]
)
def test_a_certificate_not_from_the_pinned_ca_is_refused(samba, tree, people, ca):
    pinned = CertificateAuthority("Some other CA").pem if ca == "other" else ""
    source = ad_source(samba, tree, ca=pinned)

    job = sync(source)

    assert job.status == JobStatus.FAILED, job.error_message
    assert "certificate" in job.error_message
    assert "verify" in job.error_message
    assert job.attempts.count() == 1
    assert not DirectoryUser.objects.exists()


def test_a_move_between_ous_and_a_nested_group_make_one_mover(samba, tree, people):
    source = ad_source(samba, tree)
    sync(source)
    guid = samba.guid(people["carol"])
    carol = tree.move(people["carol"], "Research")
    samba.leave(carol, people["engineering"])
    samba.join(carol, people["platform"])  # and so, through it, engineering again

    outcome = result(sync(source))

    assert (outcome["joiners"], outcome["movers"], outcome["leavers"]) == (0, 1, 0)
    (event,) = DirectoryEvent.objects.all()
    assert (event.kind, event.label) == (EventKind.MOVER, "carol@ah.test")
    assert event.changes["org_unit"] == [org(tree, "Sales"), org(tree, "Research")]
    assert [g["name"] for g in event.changes["groups"]["added"]] == ["platform"]
    assert "removed" not in event.changes["groups"] or not event.changes["groups"]["removed"]
    stored = users(source)["carol@ah.test"]
    assert stored.external_id == guid  # the same person, under a new DN
    assert ("carol@ah.test", "engineering") in memberships(source)


def test_disabling_an_account_in_ad_makes_a_leaver(samba, tree, people):
    for n in range(10):  # enough people that one leaver stays within the brake
        tree.add_person(f"extra{n}")
    source = ad_source(samba, tree, page_size=5)
    sync(source)
    samba.modify(people["user0"], userAccountControl=0x202)

    outcome = result(sync(source))

    assert outcome["leavers"] == 1
    event = DirectoryEvent.objects.get()
    assert (event.kind, event.label) == (EventKind.LEAVER, "user0@ah.test")
    assert event.changes == {"state": ["active", "disabled"]}


@pytest.fixture
def gws() -> Iterator[google_directory.GoogleDirectorySandbox]:
    server = google_directory.start(domains=["ah.test"])
    yield server
    server.shutdown()


@pytest.fixture
def idp() -> Iterator[scim.ScimSandbox]:
    yield from running_idp()


def test_a_user_in_a_nested_group_is_a_member_for_jml_rules(samba, tree, people, gws, idp):
    """Grace joins; then she is put in "platform", which sits inside "engineering": the
    mover job adds her to both groups in Google Workspace."""
    gws.add_org_unit(org(tree, "Research"))
    gws.seed(
        groups=[
            {"email": "platform@ah.test", "name": "Platform"},
            {"email": "engineering@ah.test", "name": "Engineering"},
        ]
    )
    platform = create_platform(
        name="Workspace",
        kind=Platform.Kind.GOOGLE_WORKSPACE,
        identity_provider=create_identity_provider(
            name="IdP", scim_base_url=idp.base_url, token=idp.bearer_token
        ),
        primary_domain="ah.test",
        admin_email="admin@ah.test",
        api_endpoint=gws.base_url,
        service_account_key=gws.issue_key(),
    )
    source = ad_source(samba, tree)
    assert sync(source).status == JobStatus.COMPLETED
    services.save_rule(source, platform=platform, dry_run=False)
    grace = tree.add_person("grace", given="Grace", family="Hopper", department="Research")
    assert result(sync(source))["joiners"] == 1
    joiner = DirectoryEvent.objects.get(kind=EventKind.JOINER)
    assert joiner.job is not None
    assert deliver(joiner.job).status == JobStatus.COMPLETED
    identity = Identity.objects.get(login="grace@ah.test")
    # In the order they were made: the SSO user waits for the Google user.
    jobs = Job.objects.filter(subject_id=str(identity.pk)).exclude(pk=joiner.job.pk)
    for job in jobs.order_by("pk"):
        assert deliver(job).status == JobStatus.COMPLETED, job.error_message

    samba.join(grace, people["platform"])
    assert result(sync(source))["movers"] == 1

    mover = DirectoryEvent.objects.get(kind=EventKind.MOVER)
    added = sorted(g["email"] for g in mover.changes["groups"]["added"])
    assert added == ["engineering@ah.test", "platform@ah.test"]
    assert mover.job is not None
    assert deliver(mover.job).status == JobStatus.COMPLETED, mover.job.error_message
    assert gws.groups.member_emails("platform@ah.test") == ["grace@ah.test"]
    assert gws.groups.member_emails("engineering@ah.test") == ["grace@ah.test"]
