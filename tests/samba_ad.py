"""A real Active Directory domain controller for tests: Debian's Samba AD DC, provisioned in a
temp dir, serving LDAP (389, StartTLS) and LDAPS (636) with a certificate from a test CA.

Samba's LDAP server has no setting for its ports: it always listens on 389 and 636. So it
runs in a private network namespace (``unshare --net``), where those ports are free whatever
else runs on the machine, and a relay in the test process forwards two free local ports to
them: the tests connect to 127.0.0.1:<free port> as they would to any DC.
"""

import contextlib
import ctypes
import datetime as dt
import ipaddress
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import ldap3
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.servers import missing, relay, serve_connections, stop

REALM = "AH.TEST"
DOMAIN = "AH"
BASE_DN = "DC=ah,DC=test"
ADMIN_DN = f"CN=Administrator,CN=Users,{BASE_DN}"
ADMIN_PASSWORD = "Adm1n-Passw0rd-for-tests"
READER_DN = f"CN=AccessHive Reader,CN=Users,{BASE_DN}"
READER_PASSWORD = "Read3r-Passw0rd-for-tests"
USER_PASSWORD = "Us3r-Passw0rd-for-tests"
STAFF_DN = f"OU=Staff,{BASE_DN}"
# userAccountControl: NORMAL_ACCOUNT, and with ACCOUNTDISABLE (0x2).
ENABLED = 0x200
DISABLED = 0x202
CLONE_NEWNET = 0x40000000


def require_samba() -> tuple[str, str]:
    """The samba and samba-tool binaries; skip (or, in CI, fail) when they are missing."""
    samba = shutil.which("samba") or "/usr/sbin/samba"
    tool = shutil.which("samba-tool") or "/usr/bin/samba-tool"
    provision = Path("/usr/share/samba/setup/ad-schema")
    installed = os.access(samba, os.X_OK) and os.access(tool, os.X_OK) and provision.is_dir()
    can_isolate = bool(shutil.which("unshare") and shutil.which("ip")) and os.geteuid() == 0
    if not (installed and can_isolate):
        missing(
            "Active Directory",
            "needs Samba AD DC (apt-get install samba-ad-dc samba-ad-provision iproute2; "
            ".ci/run installs them) and root, to run it in its own network namespace",
        )
    return samba, tool


class CertificateAuthority:
    """A certificate authority and the DC's certificate it signed (for 127.0.0.1 and
    localhost): what a company's own PKI hands its domain controllers."""

    def __init__(self, common_name: str = "AccessHive Test CA") -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        now = dt.datetime.now(dt.UTC)
        self.certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .sign(self.key, hashes.SHA256())
        )

    @property
    def pem(self) -> str:
        return self.certificate.public_bytes(serialization.Encoding.PEM).decode()

    def issue(self, host: str = "dc1.ah.test") -> tuple[str, str]:
        """A server certificate and its key, PEM."""
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        now = dt.datetime.now(dt.UTC)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(
                x509.SubjectAlternativeName(
                    [
                        x509.DNSName(host),
                        x509.DNSName("localhost"),
                        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    ]
                ),
                critical=False,
            )
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        ).decode()
        return certificate.public_bytes(serialization.Encoding.PEM).decode(), key_pem


class _NamespaceRelay:
    """Forwards a free port on 127.0.0.1 here to a port on the namespace's loopback."""

    def __init__(self, netns_path: str, target_port: int) -> None:
        self.netns_path = netns_path
        self.target_port = target_port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._stopped = threading.Event()
        serve_connections(self._listener, self._relay, self._stopped)

    def _connect_inside(self) -> socket.socket:
        """A socket connected from inside the namespace. setns() moves only the calling
        thread, and a socket keeps the namespace it was made in, so a short-lived thread
        makes it."""
        made: list[socket.socket | BaseException] = []

        def inside() -> None:
            try:
                libc = ctypes.CDLL(None, use_errno=True)
                with open(self.netns_path) as handle:
                    if libc.setns(handle.fileno(), CLONE_NEWNET) != 0:
                        raise OSError(ctypes.get_errno(), "setns failed")
                made.append(socket.create_connection(("127.0.0.1", self.target_port), 5))
            except BaseException as exc:  # handed to the caller's thread
                made.append(exc)

        thread = threading.Thread(target=inside)
        thread.start()
        thread.join()
        result = made[0]
        if isinstance(result, BaseException):
            raise result
        return result

    def _relay(self, client: socket.socket) -> None:
        with client:
            try:
                upstream = self._connect_inside()
            except OSError:
                return  # the client sees the connection closed, as with a server not up yet
            with upstream:
                relay(client, upstream, self._stopped)

    def close(self) -> None:
        self._stopped.set()
        self._listener.close()


class SambaAD:
    """One provisioned domain (AH.TEST) with OU=Staff for the tests' people and groups and a
    read-only bind account, as an admin would give AccessHive."""

    def __init__(self, samba: str, tool: str) -> None:
        self.samba = samba
        self.tool = tool
        self.root = Path(tempfile.mkdtemp(prefix="accesshive-samba-"))
        self.ca = CertificateAuthority()
        self.process: subprocess.Popen[bytes] | None = None
        self._relays: list[_NamespaceRelay] = []
        self.provisioned_in = 0.0
        self.started_in = 0.0

    @property
    def ldaps_url(self) -> str:
        return f"ldaps://127.0.0.1:{self._relays[1].port}"

    @property
    def ldap_url(self) -> str:
        return f"ldap://127.0.0.1:{self._relays[0].port}"

    @property
    def ca_file(self) -> Path:
        return self.root / "tls" / "ca.pem"

    def start(self) -> "SambaAD":
        started = time.monotonic()
        tls = self.root / "tls"
        tls.mkdir()
        (self.root / "run").mkdir()
        certificate, key = self.ca.issue()
        (tls / "cert.pem").write_text(certificate)
        (tls / "key.pem").write_text(key)
        (tls / "key.pem").chmod(0o600)  # samba refuses a key others can read
        self.ca_file.write_text(self.ca.pem)
        options = {
            "interfaces": "lo",
            "bind interfaces only": "yes",
            "server services": "ldap",
            "log file": str(self.root / "log.%m"),
            # Its own pid file: the default /run/samba is shared by every run on the machine.
            "pid directory": str(self.root / "run"),
            "tls enabled": "yes",
            "tls keyfile": str(tls / "key.pem"),
            "tls certfile": str(tls / "cert.pem"),
            "tls cafile": str(self.ca_file),
        }
        subprocess.run(
            [
                self.tool,
                "domain",
                "provision",
                f"--realm={REALM}",
                f"--domain={DOMAIN}",
                "--server-role=dc",
                "--dns-backend=NONE",
                f"--adminpass={ADMIN_PASSWORD}",
                f"--targetdir={self.root / 'dc'}",
                *(f"--option={name}={value}" for name, value in options.items()),
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )
        self.provisioned_in = time.monotonic() - started
        self.log = open(self.root / "samba.log", "wb")  # noqa: SIM115 - closed in stop()
        config = self.root / "dc" / "etc" / "smb.conf"
        self.process = subprocess.Popen(
            [
                "unshare",
                "--net",
                "--",
                "sh",
                "-c",
                'ip link set lo up && exec "$0" -i -s "$1"',
                self.samba,
                str(config),
            ],
            # samba -i stops at EOF on stdin: the pipe stays open until stop().
            stdin=subprocess.PIPE,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        netns = f"/proc/{self.process.pid}/ns/net"
        self._relays = [_NamespaceRelay(netns, 389), _NamespaceRelay(netns, 636)]
        self._wait_until_serving()
        self._load_base()
        self.started_in = time.monotonic() - started
        return self

    def _wait_until_serving(self) -> None:
        deadline = time.monotonic() + 60
        while True:
            assert self.process is not None
            if self.process.poll() is not None or time.monotonic() > deadline:
                output = self.output()
                self.stop()
                raise RuntimeError(f"Samba AD DC did not start:\n{output}")
            try:
                with self.connection():
                    return
            except ldap3.core.exceptions.LDAPException:
                time.sleep(0.2)

    def output(self) -> str:
        return (self.root / "samba.log").read_text(errors="replace")

    def stop(self) -> None:
        for forwarder in self._relays:
            forwarder.close()
        if self.process is not None and self.process.stdin is not None:
            self.process.stdin.close()  # samba -i stops by itself at EOF; stop() waits
        stop(self.process, getattr(self, "log", None))
        shutil.rmtree(self.root, ignore_errors=True)

    # Data, written as Administrator over LDAPS (AD sets passwords only over an encrypted
    # connection).

    def connection(self) -> ldap3.Connection:
        tls = ldap3.Tls(ca_certs_file=str(self.ca_file), validate=2)
        server = ldap3.Server(
            "127.0.0.1", port=self._relays[1].port, use_ssl=True, tls=tls, get_info=ldap3.NONE
        )
        return ldap3.Connection(
            server, ADMIN_DN, ADMIN_PASSWORD, auto_bind=True, raise_exceptions=True
        )

    def add(self, dn: str, object_classes: Iterable[str], attributes: dict[str, Any]) -> str:
        with self.connection() as conn:
            conn.add(dn, list(object_classes), attributes)
        return dn

    def modify(self, dn: str, **changes: Any) -> None:
        """Replace attributes (None deletes one)."""
        with self.connection() as conn:
            conn.modify(
                dn,
                {
                    name: [(ldap3.MODIFY_REPLACE, [] if value is None else [value])]
                    for name, value in changes.items()
                },
            )

    def _load_base(self) -> None:
        self.add_user_entry(READER_DN, "accesshive-reader", READER_PASSWORD)
        self.add(STAFF_DN, ["organizationalUnit"], {})

    def add_user_entry(self, dn: str, sam: str, password: str, **attributes: Any) -> str:
        encoded = f'"{password}"'.encode("utf-16-le")
        # AD creates an account disabled unless told otherwise.
        base = {"sAMAccountName": sam, "unicodePwd": encoded, "userAccountControl": ENABLED}
        return self.add(
            dn, ["top", "person", "organizationalPerson", "user"], {**base, **attributes}
        )

    def tree(self) -> "Tree":
        """A fresh OU under Staff for one test, so tests sharing the server stay apart."""
        return Tree(self, uuid.uuid4().hex[:6])

    def join(self, member_dn: str, group_dn: str) -> None:
        with self.connection() as conn:
            conn.modify(group_dn, {"member": [(ldap3.MODIFY_ADD, [member_dn])]})

    def leave(self, member_dn: str, group_dn: str) -> None:
        with self.connection() as conn:
            conn.modify(group_dn, {"member": [(ldap3.MODIFY_DELETE, [member_dn])]})

    def guid(self, dn: str) -> str:
        with self.connection() as conn:
            conn.search(dn, "(objectClass=*)", ldap3.BASE, attributes=["objectGUID"])
            return str(uuid.UUID(bytes_le=conn.entries[0].objectGUID.raw_values[0]))

    def delete(self, dn: str) -> None:
        with self.connection() as conn, contextlib.suppress(ldap3.core.exceptions.LDAPException):
            conn.delete(dn)


class Tree:
    """OU=<tag>,OU=Staff with OU=Research, OU=Sales and OU=Groups below it: one test's part
    of the directory. sAMAccountName is unique domain-wide, so it carries the tag."""

    def __init__(self, ad: SambaAD, tag: str) -> None:
        self.ad = ad
        self.tag = tag
        self.dn = ad.add(f"OU={tag},{STAFF_DN}", ["organizationalUnit"], {})
        for ou in ("Research", "Sales", "Groups"):
            ad.add(f"OU={ou},{self.dn}", ["organizationalUnit"], {})

    def sam(self, name: str) -> str:
        return f"{name}-{self.tag}"

    def add_person(
        self,
        name: str,
        *,
        ou: str = "Research",
        given: str = "",
        family: str = "",
        department: str = "",
        disabled: bool = False,
    ) -> str:
        attributes: dict[str, Any] = {
            "mail": f"{name}@ah.test",
            "userPrincipalName": f"{self.sam(name)}@ah.test",
            "userAccountControl": DISABLED if disabled else ENABLED,
        }
        for attribute, value in (("givenName", given), ("sn", family), ("department", department)):
            if value:
                attributes[attribute] = value
        dn = f"CN={name},OU={ou},{self.dn}"
        return self.ad.add_user_entry(dn, self.sam(name), USER_PASSWORD, **attributes)

    def add_group(self, name: str, members: Iterable[str] = ()) -> str:
        attributes: dict[str, Any] = {"sAMAccountName": self.sam(name), "mail": f"{name}@ah.test"}
        if members:
            attributes["member"] = list(members)
        return self.ad.add(f"CN={name},OU=Groups,{self.dn}", ["top", "group"], attributes)

    def move(self, dn: str, ou: str) -> str:
        """Move an entry to another OU of this tree (its objectGUID stays); the new DN."""
        rdn = dn.split(",", 1)[0]
        superior = f"OU={ou},{self.dn}"
        with self.ad.connection() as conn:
            conn.modify_dn(dn, rdn, new_superior=superior)
        return f"{rdn},{superior}"
