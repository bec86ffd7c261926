"""Where a CSV import's time goes: bench_import's file of N rows, uploaded and run once as a
dry run and once for real in this process, each under cProfile unless --no-cprofile (then run
the script under py-spy instead, e.g. ``py-spy record --idle --format raw -o out.txt --
.venv/bin/python bench/profile_import.py 30000 --no-cprofile``).
Run: .venv/bin/python bench/profile_import.py [ROWS] [--only dry|import] [--no-cprofile]
"""

import argparse
import cProfile
import io
import os
import pstats
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import bench_import, support


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rows", type=int, nargs="?", default=10_000)
    parser.add_argument("--only", choices=("dry", "import"))
    parser.add_argument("--no-cprofile", action="store_true")
    args = parser.parse_args()
    support.require_services(redis=False)

    from vault.crypto import generate_key_line

    os.environ["ACCESSHIVE_VAULT_KEYS"] = generate_key_line("bench")
    workdir = Path(tempfile.mkdtemp(prefix="ah-profile-import-"))
    path = workdir / "identities.csv"
    try:
        with support.django_on_fresh_database(f"ah_profile_import_{os.getpid()}"):
            from accesshive.celery import app

            os.environ["CELERY_BROKER_URL"] = "memory://"
            app.conf.update(broker_url="memory://")
            from django.contrib.auth import get_user_model

            user = get_user_model().objects.create_superuser("bench", "bench@example.com", None)
            bench_import.setup_platform()
            bench_import.write_file(path, args.rows)
            for dry_run in (True, False):
                if args.only and args.only != ("dry" if dry_run else "import"):
                    continue
                batch = bench_import.upload(path, dry_run=dry_run, actor=user)
                profiler = None if args.no_cprofile else cProfile.Profile()
                started = time.perf_counter()
                if profiler:
                    profiler.enable()
                bench_import.run_import(batch.pk)
                if profiler:
                    profiler.disable()
                print(
                    f"{'dry run' if dry_run else 'import'}: {args.rows:,} rows in "
                    f"{time.perf_counter() - started:.1f} s"
                )
                if profiler:
                    text = io.StringIO()
                    stats = pstats.Stats(profiler, stream=text)
                    stats.sort_stats("cumulative").print_stats(40)
                    stats.sort_stats("tottime").print_stats(25)
                    print(text.getvalue())
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
