"""The chaos suite runs only under `make chaos`, which
starts a PostgreSQL and a Redis of its own: these tests restart, stop and flush them."""

import os

collect_ignore_glob = [] if os.environ.get("ACCESSHIVE_CHAOS_PG_DIR") else ["test_*.py"]
