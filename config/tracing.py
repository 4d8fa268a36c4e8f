"""OpenTelemetry traces for Django, Celery, psycopg and redis-py: off unless
``TRACING_OTLP_ENDPOINT`` names an OTLP/HTTP collector (``http://collector:4318/v1/traces``).

A request's trace holds its database statements and commit, the write-through's Redis calls
and the change event's XADD, and the Celery tasks it enqueues (the trace context travels in
the task's headers). The web entry points and every Celery process call ``configure_tracing``.
"""

from __future__ import annotations

import logging

from django.conf import settings

logger = logging.getLogger(__name__)

_instrumentors: list = []


def configure_tracing(*, exporter=None):
    """Instrument this process; ``exporter``: a span exporter of one's own (tests: the SDK's
    in-memory one), else OTLP/HTTP to ``TRACING_OTLP_ENDPOINT``. Returns the tracer provider,
    or None when tracing is off or already on."""
    endpoint = settings.TRACING_OTLP_ENDPOINT
    if _instrumentors or (exporter is None and not endpoint):
        return None
    from opentelemetry.instrumentation.celery import CeleryInstrumentor
    from opentelemetry.instrumentation.django import DjangoInstrumentor
    from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor
    from opentelemetry.instrumentation.redis import RedisInstrumentor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    provider = TracerProvider(
        resource=Resource.create({"service.name": settings.TRACING_SERVICE_NAME})
    )
    if exporter is None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    else:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    for instrumentor in (
        DjangoInstrumentor(),
        CeleryInstrumentor(),
        PsycopgInstrumentor(),
        RedisInstrumentor(),
        SyncopsInstrumentor(),
    ):
        # NOTE: the provider is handed to each instrumentor rather than set globally: the
        # global one can be set once per process, and a test sets its own.
        instrumentor.instrument(tracer_provider=provider)
        _instrumentors.append(instrumentor)
    logger.info(
        "tracing: spans of Django, Celery, psycopg and redis-py go to %s",
        endpoint or type(exporter).__name__,
    )
    return provider


class SyncopsInstrumentor:
    """Spans the libraries cannot see: the database COMMIT (psycopg traces statements, not
    ``commit()``), the engine's write-through to Redis and its change events (sent as one raw
    buffer, past redis-py's pipeline that RedisInstrumentor wraps: the write's span counts the
    events it carried; ``events.append`` has a span of its own where events go alone)."""

    TARGETS = (
        ("django.db.backends.base.base", "BaseDatabaseWrapper.commit", "COMMIT"),
        ("sync.cache.store", "write_many", "sync.cache.write"),
        ("sync.cache.events", "append", "sync.cache.events"),
    )

    def instrument(self, *, tracer_provider) -> None:
        import importlib

        import wrapt
        from opentelemetry.trace import SpanKind

        tracer = tracer_provider.get_tracer(__name__)

        def traced(name: str):
            def wrapper(wrapped, _instance, args, kwargs):
                with tracer.start_as_current_span(name, kind=SpanKind.CLIENT) as span:
                    if name == "sync.cache.write":
                        # The change events ride in the write's own round trip (``then``):
                        # how many keys and events this one span carries.
                        writes = args[0] if args else kwargs.get("writes", [])
                        span.set_attribute("sync.cache.keys", len(writes))
                        span.set_attribute("sync.cache.events", len(kwargs.get("then") or []))
                    return wrapped(*args, **kwargs)

            return wrapper

        for module, attribute, name in self.TARGETS:
            wrapt.wrap_function_wrapper(importlib.import_module(module), attribute, traced(name))

    def uninstrument(self) -> None:
        import importlib

        from opentelemetry.instrumentation.utils import unwrap

        for module, attribute, _name in self.TARGETS:
            owner = importlib.import_module(module)
            *path, leaf = attribute.split(".")
            for part in path:
                owner = getattr(owner, part)
            unwrap(owner, leaf)


def unconfigure_tracing() -> None:
    """Undo ``configure_tracing`` (tests)."""
    while _instrumentors:
        _instrumentors.pop().uninstrument()
