"""A private OpenLDAP slapd for tests: its own config and mdb database in a temp dir, on a free
port, with a small Active-Directory-like schema, loaded and changed through ldap3."""

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import ldap3

from tests.servers import free_port, missing, stop

BASE_DN = "dc=example,dc=com"
ADMIN_DN = f"cn=admin,{BASE_DN}"
ADMIN_PASSWORD = "admin-secret"
READER_DN = f"cn=reader,{BASE_DN}"
READER_PASSWORD = "reader-secret"
SCHEMA_DIR = Path("/etc/ldap/schema")

# AD's attribute names with AD's own OIDs (so a source mapped with Active Directory's defaults
# reads them as it would from AD), plus auxiliary classes to hang them on. The class OIDs are
# UUID-based (2.25.*), which need no registration.
AD_SCHEMA = """
attributetype ( 1.2.840.113556.1.4.8 NAME 'userAccountControl'
    EQUALITY integerMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.27 SINGLE-VALUE )
attributetype ( 1.2.840.113556.1.4.221 NAME 'sAMAccountName'
    EQUALITY caseIgnoreMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 SINGLE-VALUE )
attributetype ( 1.2.840.113556.1.2.102 NAME 'memberOf'
    EQUALITY distinguishedNameMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.12 )
attributetype ( 1.2.840.113556.1.2.141 NAME 'department'
    EQUALITY caseIgnoreMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 SINGLE-VALUE )
objectclass ( 2.25.171736413151447616271209135446135398401 NAME 'accessHiveADUser'
    SUP top AUXILIARY MAY ( sAMAccountName $ userAccountControl $ memberOf $ department ) )
objectclass ( 2.25.171736413151447616271209135446135398402 NAME 'accessHiveMailGroup'
    SUP top AUXILIARY MAY ( mail ) )
"""

CONFIG = """
include {schema}/core.schema
include {schema}/cosine.schema
include {schema}/inetorgperson.schema
include {schema}/nis.schema
include {root}/accesshive-ad.schema
pidfile {root}/slapd.pid
argsfile {root}/slapd.args
modulepath /usr/lib/ldap
moduleload back_mdb
sizelimit unlimited
database mdb
maxsize 104857600
suffix "{base}"
rootdn "{admin}"
rootpw {admin_password}
directory {root}/data
index objectClass eq
index entryUUID eq
access to attrs=userPassword by anonymous auth by * none
access to * by dn.exact="{reader}" read by * none
"""


def slapd_binary() -> str | None:
    return shutil.which("slapd") or (
        "/usr/sbin/slapd" if os.access("/usr/sbin/slapd", os.X_OK) else None
    )


def require_slapd() -> str:
    """The slapd binary; skip (or, in CI, fail) with the reason when it is not installed."""
    binary = slapd_binary()
    if binary is None or not SCHEMA_DIR.is_dir():
        missing(
            "LDAP", "needs OpenLDAP slapd (apt-get install slapd ldap-utils; .ci/run installs it)"
        )
    return binary


class Slapd:
    """One slapd process with an empty dc=example,dc=com tree and a read-only bind account."""

    def __init__(self, binary: str) -> None:
        self.binary = binary
        self.root = Path(tempfile.mkdtemp(prefix="accesshive-slapd-"))
        self.port = free_port()
        self.url = f"ldap://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> "Slapd":
        (self.root / "data").mkdir()
        (self.root / "accesshive-ad.schema").write_text(AD_SCHEMA)
        config = self.root / "slapd.conf"
        config.write_text(
            CONFIG.format(
                schema=SCHEMA_DIR,
                root=self.root,
                base=BASE_DN,
                admin=ADMIN_DN,
                admin_password=ADMIN_PASSWORD,
                reader=READER_DN,
            )
        )
        self.log = open(self.root / "slapd.log", "wb")  # noqa: SIM115 - closed in stop()
        # -d 0: stay in the foreground (no fork), so stop() owns the process.
        self.process = subprocess.Popen(
            [self.binary, "-h", f"{self.url}/", "-f", str(config), "-d", "0"],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                with socket.create_connection(("127.0.0.1", self.port), 0.2):
                    break
            except OSError:
                time.sleep(0.05)
        else:
            self.stop()
            raise RuntimeError(f"slapd did not listen on {self.url}:\n{self.output()}")
        if self.process.poll() is not None:
            output = self.output()
            self.stop()
            raise RuntimeError(f"slapd exited at start:\n{output}")
        self._load_base()
        return self

    def output(self) -> str:
        return (self.root / "slapd.log").read_text(errors="replace")

    def stop(self) -> None:
        stop(self.process, getattr(self, "log", None))
        shutil.rmtree(self.root, ignore_errors=True)

    # Data.

    def connection(self) -> ldap3.Connection:
        server = ldap3.Server("127.0.0.1", port=self.port, get_info=ldap3.NONE)
        return ldap3.Connection(server, ADMIN_DN, ADMIN_PASSWORD, auto_bind=True)

    def _check(self, conn: ldap3.Connection, ok: bool, what: str) -> None:
        if not ok:
            raise RuntimeError(f"slapd refused {what}: {conn.result}")

    def add(self, dn: str, object_classes: Iterable[str], attributes: dict[str, Any]) -> None:
        with self.connection() as conn:
            self._check(conn, conn.add(dn, list(object_classes), attributes), f"add {dn}")

    def modify(self, dn: str, **changes: Any) -> None:
        """Replace attributes (a value of None or [] deletes the attribute)."""
        operations = {
            name: [(ldap3.MODIFY_REPLACE, [] if value is None else _as_list(value))]
            for name, value in changes.items()
        }
        with self.connection() as conn:
            self._check(conn, conn.modify(dn, operations), f"modify {dn}")

    def add_values(self, dn: str, name: str, *values: str) -> None:
        with self.connection() as conn:
            ok = conn.modify(dn, {name: [(ldap3.MODIFY_ADD, list(values))]})
            self._check(conn, ok, f"add {name} to {dn}")

    def delete_values(self, dn: str, name: str, *values: str) -> None:
        with self.connection() as conn:
            ok = conn.modify(dn, {name: [(ldap3.MODIFY_DELETE, list(values))]})
            self._check(conn, ok, f"remove {name} from {dn}")

    def delete(self, dn: str) -> None:
        with self.connection() as conn:
            self._check(conn, conn.delete(dn), f"delete {dn}")

    def _load_base(self) -> None:
        self.add(BASE_DN, ["dcObject", "organization"], {"dc": "example", "o": "Example"})
        self.add(
            READER_DN,
            ["organizationalRole", "simpleSecurityObject"],
            {"cn": "reader", "userPassword": READER_PASSWORD},
        )
        for ou in ("Staff", "Groups"):
            self.add(f"ou={ou},{BASE_DN}", ["organizationalUnit"], {"ou": ou})
        for ou in ("Research", "Sales"):
            self.add(f"ou={ou},ou=Staff,{BASE_DN}", ["organizationalUnit"], {"ou": ou})

    def add_person(
        self,
        uid: str,
        *,
        ou: str = "Research",
        given: str = "",
        family: str = "",
        department: str = "",
        title: str = "",
        manager: str = "",
        disabled: bool = False,
        groups: Iterable[str] = (),
        mail: str | None = None,
    ) -> str:
        """An inetOrgPerson carrying AD's attributes; memberOf lists the group DNs given
        (the groups' member attribute is kept in step by add_group / join)."""
        dn = f"uid={uid},ou={ou},ou=Staff,{BASE_DN}"
        attributes: dict[str, Any] = {
            "uid": uid,
            "cn": f"{given} {family}".strip() or uid,
            "sn": family or uid,
            "sAMAccountName": uid,
            "userAccountControl": 514 if disabled else 512,
        }
        if mail is None:
            mail = f"{uid}@example.com"
        if mail:
            attributes["mail"] = mail
        for name, value in (
            ("givenName", given),
            ("displayName", f"{given} {family}".strip()),
            ("department", department),
            ("title", title),
            ("manager", manager),
        ):
            if value:
                attributes[name] = value
        if groups:
            attributes["memberOf"] = list(groups)
        self.add(dn, ["inetOrgPerson", "accessHiveADUser"], attributes)
        return dn

    def add_group(self, cn: str, members: Iterable[str], *, mail: str | None = None) -> str:
        dn = f"cn={cn},ou=Groups,{BASE_DN}"
        # groupOfNames needs a member: the admin entry stands in (no user, so no membership).
        attributes: dict[str, Any] = {"cn": cn, "member": [ADMIN_DN, *members]}
        attributes["mail"] = mail if mail is not None else f"{cn}@example.com"
        self.add(dn, ["groupOfNames", "accessHiveMailGroup"], attributes)
        return dn

    def join(self, user_dn: str, group_dn: str) -> None:
        self.add_values(group_dn, "member", user_dn)
        self.add_values(user_dn, "memberOf", group_dn)

    def leave(self, user_dn: str, group_dn: str) -> None:
        self.delete_values(group_dn, "member", user_dn)
        self.delete_values(user_dn, "memberOf", group_dn)


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple | set) else [value]


def move(slapd: Slapd, dn: str, ou: str) -> str:
    """Move an entry to another OU under Staff (its entryUUID stays); returns the new DN."""
    rdn = dn.split(",", 1)[0]
    superior = f"ou={ou},ou=Staff,{BASE_DN}"
    with slapd.connection() as conn:
        ok = conn.modify_dn(dn, rdn, new_superior=superior)
        if not ok:
            raise RuntimeError(f"slapd refused to move {dn}: {conn.result}")
    return f"{rdn},{superior}"
