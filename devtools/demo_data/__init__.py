"""The demo's data, not shipped: one module per domain app (``catalog``, ``customers``,
``buyers``, ``sellers``), each with an idempotent ``load(*, count: int) -> str``, and
``setup.demo_setup``, which ``./dev demo`` runs on every start (the superuser, every app's data,
a cache verification). Run it alone with::

    python -m devtools.demo_data [--count 300]
"""
