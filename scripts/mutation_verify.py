"""Re-checks mutmut's "killed" and "timeout" verdicts, each in a fresh pytest process.

mutmut runs each mutant in a worker forked from a long-lived process, and a test can fail
there for a reason that is not the mutant (state a previous run left behind). This script
trusts none of that: for each mutant mutmut reports killed or timed out, it starts a new
`python -m pytest` in mutants/ with only that mutant active (MUTANT_UNDER_TEST, the switch
mutmut's trampolines read) and the tests mutmut chose for it. A mutant whose tests pass there
was not killed.

Run after `make mutation`, under the same services: `make mutation-verify MUTATE="jobs.sweeper*"`
(or `--sample N` per module for an estimate). Prints one line per false kill and a tally per
module; the exit status is 1 when any kill did not hold. A kill holds when a test fails with the
mutant and the same test, run again alone without it, passes.
"""

import argparse
import fnmatch
import json
import os
import random
import re
import subprocess
import sys
import tomllib
from collections import Counter, defaultdict
from pathlib import Path

from mutmut.utils.format_utils import mangled_name_from_mutant_name

ROOT = Path(__file__).resolve().parents[1]
MUTANTS = ROOT / "mutants"
MUTMUT = Path(sys.executable).parent / "mutmut"
# Far beyond any mutant's test run here (2 to 10 s, under a minute on a loaded machine): a
# mutant that runs this long has made its tests hang, which mutmut counts as a kill too.
HANG_SECONDS = 600
# pytest's short summary line of a test that failed, or whose fixture did (-rfE):
# "FAILED tests/x.py::test_y[id] - why", "ERROR tests/x.py::test_z - why".
FAILED = re.compile(r"^(?:FAILED|ERROR) (?P<test>[^\s\[]+(?:\[[^\]]*\])?)", re.MULTILINE)


def module_of(name: str) -> str:
    return name.split("__mutmut_")[0].rsplit(".", 1)[0]


def killed_mutants(patterns: list[str], *, whatever_verdict: bool = False) -> list[str]:
    listing = subprocess.run(
        [str(MUTMUT), "results", "--all", "true"],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    ).stdout
    names = []
    for line in listing.splitlines():
        name, _, outcome = line.strip().rpartition(": ")
        if "__mutmut_" not in name or not (whatever_verdict or outcome in ("killed", "timeout")):
            continue
        if not patterns or any(fnmatch.fnmatch(name, pattern) for pattern in patterns):
            names.append(name)
    return names


def pytest_args() -> list[str]:
    with open(ROOT / "pyproject.toml", "rb") as project:
        settings = tomllib.load(project)["tool"]["mutmut"]
    return list(settings.get("pytest_add_cli_args", []))


def tests_by_function() -> dict[str, list[str]]:
    with open(MUTANTS / "mutmut-stats.json") as stats:
        return dict(json.load(stats)["tests_by_mangled_function_name"])


def run_pytest(tests: list[str], extra_args: list[str], mutant: str) -> tuple[int, str]:
    """pytest's exit status (-1 when it hung) and the first test that failed."""
    command = [sys.executable, "-m", "pytest", "--rootdir=.", "--tb=no", "-rfE", *extra_args]
    env = {**os.environ, "MUTANT_UNDER_TEST": mutant}
    try:
        result = subprocess.run(
            [*command, *tests],
            cwd=MUTANTS,
            env=env,
            capture_output=True,
            text=True,
            timeout=HANG_SECONDS,
        )
    except subprocess.TimeoutExpired:
        return -1, ""
    failed = FAILED.search(result.stdout)
    return result.returncode, failed["test"] if failed else ""


def verdict(name: str, tests: list[str], extra_args: list[str], *, fresh: bool = False) -> str:
    """ "held" when a test fails with the mutant (or hangs) and the same test passes without
    it; "false kill" when the tests pass with the mutant; "flaky" when the failing test also
    fails without the mutant on a fresh test database; "error" when pytest could not run them
    (collection error, interrupted)."""
    status, failed = run_pytest(tests, extra_args, name)
    if status == 0:
        return "false kill"
    if status == -1:
        return "held"
    if status != 1 or not failed:
        return "error"
    if run_pytest([failed], extra_args, "")[0] == 0:
        return "held"
    if fresh:
        return "flaky"
    # The test fails without the mutant too. Seen here: mutants had left rows committed in
    # the reused test database (--reuse-db), which then failed tests for every later mutant,
    # in mutmut's run as here. Ask again once, on a test database made anew.
    if run_pytest([failed], [*extra_args, "--create-db"], "")[0] != 0:
        return "flaky"
    print(f"  {name}: asked again on a fresh test database", flush=True)
    return verdict(name, tests, extra_args, fresh=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("patterns", nargs="*", help="mutant names or globs (default: all)")
    parser.add_argument("--sample", type=int, help="check at most N random kills per module")
    parser.add_argument("--seed", type=int, default=0, help="the sample's seed")
    parser.add_argument(
        "--whatever-verdict",
        action="store_true",
        help="check the named mutants even if mutmut has not killed them (or not tried them)",
    )
    options = parser.parse_args()

    names = killed_mutants(options.patterns, whatever_verdict=options.whatever_verdict)
    if options.sample:
        by_module: dict[str, list[str]] = defaultdict(list)
        for name in names:
            by_module[module_of(name)].append(name)
        chooser = random.Random(options.seed)  # noqa: S311 - a sample, not a secret
        names = [
            name
            for module_names in by_module.values()
            for name in chooser.sample(module_names, min(options.sample, len(module_names)))
        ]
    tests_of = tests_by_function()
    extra_args = pytest_args()
    tally: dict[str, Counter[str]] = defaultdict(Counter)
    for name in sorted(names):
        tests = sorted(tests_of.get(mangled_name_from_mutant_name(name), []))
        outcome = verdict(name, tests, extra_args)
        tally[module_of(name)][outcome] += 1
        if outcome != "held":
            print(f"{outcome}: {name}", flush=True)
    print(f"{'module':32} {'held':>6} {'false kill':>10} {'flaky':>6} {'error':>6}")
    for module, counts in sorted(tally.items()):
        print(
            f"{module:32} {counts['held']:>6} {counts['false kill']:>10} {counts['flaky']:>6} "
            f"{counts['error']:>6}"
        )
    return int(any(sum(counts.values()) > counts["held"] for counts in tally.values()))


if __name__ == "__main__":
    raise SystemExit(main())
