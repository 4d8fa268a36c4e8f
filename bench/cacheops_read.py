"""The cached read through django-cacheops, in a process of its own (run by ``bench/cache.py``).

Usage: ``python bench/cacheops_read.py '{"pks": [...], "n": 20000, "warmup": 2000}'`` with the
parent's DATABASE_URL / REDIS_URL in the environment; prints one JSON object on stdout.

Measured interleaved on the same rows: a raw HGETALL of the engine's key (the baseline of the
main table), ``repository.get`` (the engine) and ``Part.objects.get(pk=…)`` answered by cacheops
from the same Redis server.
"""

from __future__ import annotations

import json
import sys
from importlib.metadata import version
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import interleaved, setup_django


def main(argv: list[str]) -> int:
    args = json.loads(argv[1])
    setup_django("bench.settings")

    import django
    from cacheops import invalidate_model
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from catalog.models import Part
    from sync.cache import connection as redis_connection
    from sync.cache import repository
    from sync.cache.keys import cache_key

    pks: list[int] = args["pks"]
    keys = [cache_key("catalog.part", pk) for pk in pks]
    client = redis_connection.client()
    count = len(pks)
    ops = {
        "hgetall": lambda i: client.hgetall(keys[i % count]),
        "repository": lambda i: repository.get(Part, pks[i % count]),
        "cacheops": lambda i: Part.objects.get(pk=pks[i % count]),
    }
    samples = interleaved(ops, n=args["n"], warmup=args["warmup"])
    # Every row was read during the warm-up: a cacheops hit sends no query at all.
    with CaptureQueriesContext(connection) as queries:
        for pk in pks:
            Part.objects.get(pk=pk)
    invalidate_model(Part)  # leave no cacheops keys behind in a shared Redis
    print(
        json.dumps(
            {
                "django": django.get_version(),
                "cacheops": version("django-cacheops"),
                "n": args["n"],
                "medians_us": {
                    name: (found.wall_us, found.cpu_us) for name, found in samples.items()
                },
                "cacheops_queries_on_rereading_all_rows": len(queries),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
