"""Prints the mutation score of each module from `mutmut results --all true`."""

import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

MUTMUT = Path(sys.executable).parent / "mutmut"


def main() -> int:
    listing = subprocess.run(
        [str(MUTMUT), "results", "--all", "true"], capture_output=True, text=True, check=True
    ).stdout
    tally: dict[str, Counter[str]] = defaultdict(Counter)
    for line in listing.splitlines():
        name, _, outcome = line.strip().rpartition(": ")
        if "__mutmut_" not in name:
            continue
        module = name.split("__mutmut_")[0].rsplit(".", 1)[0]
        tally[module][outcome] += 1
    print(f"{'module':32} {'killed':>7} {'survived':>8} {'timeout':>7} {'other':>6} {'score':>6}")
    for module, counts in sorted(tally.items()):
        tried = sum(n for outcome, n in counts.items() if outcome != "not checked")
        if not tried:
            continue
        caught = counts["killed"] + counts["timeout"]
        other = tried - caught - counts["survived"]
        print(
            f"{module:32} {counts['killed']:>7} {counts['survived']:>8} {counts['timeout']:>7} "
            f"{other:>6} {100 * caught / tried:>5.1f}%"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
