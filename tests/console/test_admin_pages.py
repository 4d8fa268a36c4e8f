"""Console pages as each role sees them: lists, details, search, filters, masking, badges."""

from __future__ import annotations

import datetime

import pytest
from django.urls import reverse

from sync.models import ErrorLog, RecordLog, SyncRun
from tests.console.conftest import CANARY

pytestmark = pytest.mark.django_db


def changelist(model) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")


def change(obj) -> str:
    meta = obj._meta
    return reverse(f"admin:{meta.app_label}_{meta.model_name}_change", args=[obj.pk])


def test_a_viewer_sees_buyers_masked_and_a_pii_viewer_unmasked(client_for, console_rows):
    buyer = console_rows["buyer"]
    for url in (changelist(type(buyer)), change(buyer)):
        masked = client_for("viewer").get(url).content.decode()
        assert "B-90001" in masked
        assert "z***@p***.example" in masked
        assert "***42" in masked or url == changelist(type(buyer))  # the phone: on its page
        assert CANARY["email"] not in masked and CANARY["name"] not in masked
        for role in ("pii_viewer", "superuser"):
            clear = client_for(role).get(url).content.decode()
            assert CANARY["email"] in clear and CANARY["name"] in clear


def test_a_seller_page_masks_its_property_inline(client_for, console_rows):
    page = client_for("operator").get(change(console_rows["seller"])).content.decode()
    assert "7***" in page  # the property's address, masked
    assert CANARY["address"] not in page
    assert (
        CANARY["address"]
        in client_for("pii_viewer").get(change(console_rows["seller"])).content.decode()
    )


def test_pii_search_is_only_for_pii_viewers(client_for, console_rows):
    url = changelist(type(console_rows["buyer"]))
    by_email = {"q": CANARY["email"]}
    assert client_for("viewer").get(url, by_email).context["cl"].result_count == 0
    assert client_for("pii_viewer").get(url, by_email).context["cl"].result_count == 1
    assert client_for("viewer").get(url, {"q": "B-90001"}).context["cl"].result_count == 1


def test_sheet_rows_are_read_only_even_for_superusers(client_for, console_rows):
    response = client_for("superuser").get(change(console_rows["buyer"]))
    assert response.status_code == 200
    assert not response.context["has_change_permission"]
    customer = client_for("superuser").get(change(console_rows["customer"]))
    assert customer.context["has_change_permission"]
    assert "email_bidx" not in customer.content.decode()


def test_parts_are_read_only_even_for_superusers(client_for, console_rows):
    # Content and stock change through the staff API's services (versions, change log).
    part = console_rows["part"]
    client = client_for("superuser")
    response = client.get(change(part))
    assert response.status_code == 200
    assert not response.context["has_change_permission"]
    assert not response.context["has_delete_permission"]
    assert (
        client.post(change(part), {"sku": part.sku, "name": "edited", "price": "2"}).status_code
        == 403
    )
    part.refresh_from_db()
    assert part.name == "Canary bolt"


def test_the_part_list_shows_the_stock_level(client_for, console_rows):
    from catalog.models import StockLevel

    part = console_rows["part"]
    url = changelist(type(part))
    response = client_for("viewer").get(url)  # a part without a stock level: nothing to sell
    (row,) = response.context["cl"].result_list
    admin = response.context["cl"].model_admin
    assert (admin.stock_quantity(row), admin.stock_available(row), admin.in_stock(row)) == (
        None,
        None,
        False,
    )
    StockLevel.objects.create(part=part, quantity=3, reserved=1)
    response = client_for("viewer").get(url)
    (row,) = response.context["cl"].result_list
    assert (admin.stock_quantity(row), admin.stock_available(row), admin.in_stock(row)) == (
        3,
        2,
        True,
    )
    page = response.content.decode()
    assert "column-stock_quantity" in page and "column-in_stock" in page


def test_runs_that_touched_a_buyer_number(client_for, console_rows):
    other = SyncRun.objects.create(
        source="buyers", target="buyers.buyer", status=SyncRun.Status.SUCCEEDED
    )
    untouched = SyncRun.objects.create(source="sellers", target="sellers.seller")
    RecordLog.objects.create(
        run_id=other.pk, row_number=2, natural_key="B-90001", action=RecordLog.Action.UNCHANGED
    )
    client = client_for("viewer")
    url = changelist(SyncRun)

    def found(term: str) -> set[int]:
        return {run.pk for run in client.get(url, {"q": term}).context["cl"].result_list}

    run = console_rows["run"]
    assert found("B-90001") == {run.pk, other.pk}  # a record log names it
    assert found("B-90002") == {run.pk}  # an error log names it
    assert found(str(untouched.pk)) == {untouched.pk}
    assert found("sellers") == {untouched.pk}
    assert found("  ") == {run.pk, other.pk, untouched.pk}


def test_record_and_error_logs_by_key_run_and_filters(client_for, console_rows):
    client = client_for("viewer")
    run = console_rows["run"]
    records, errors = changelist(RecordLog), changelist(ErrorLog)

    def count(url, params) -> int:
        return client.get(url, params).context["cl"].result_count

    assert count(records, {"q": "B-90001"}) == 1
    assert count(records, {"q": str(run.pk)}) == 1
    assert count(records, {"q": "B-00000"}) == 0
    assert count(records, {"q": " "}) == 1
    assert count(records, {"run_id": str(run.pk)}) == 1
    assert count(records, {"run_id": str(run.pk + 1)}) == 0
    bad = client.get(records, {"run_id": "x"})  # a 400 saying why, not "?e=1"
    assert bad.status_code == 400 and "a run id is a number" in bad.content.decode()
    assert count(records, {"run_source": "buyers"}) == 1
    assert count(records, {"run_source": "sellers"}) == 0
    assert count(records, {"run_trigger": "manual", "run_status": "partial"}) == 1
    assert count(errors, {"q": "B-90002", "category__exact": "schema"}) == 1
    assert count(errors, {"run_trigger": "schedule"}) == 0
    page = client.get(errors).content.decode()
    assert "300 / 254" in page and "[email]" in page


def test_date_range_filter_keeps_other_filters_and_ignores_an_empty_side(client_for, console_rows):
    client = client_for("viewer")
    url = changelist(SyncRun)
    response = client.get(
        url, {"status__exact": "partial", "created_at__gte": "2000-01-01", "created_at__lt": ""}
    )
    assert response.status_code == 200
    assert response.context["cl"].result_count == 1
    page = response.content.decode()
    assert 'name="status__exact" value="partial"' in page
    assert 'name="created_at__gte" value="2000-01-01"' in page
    assert client.get(url, {"created_at__lt": "2000-01-01"}).context["cl"].result_count == 0


def test_a_run_page_shows_its_first_errors_redacted_and_links_its_logs(client_for, console_rows):
    run = console_rows["run"]
    page = client_for("superuser").get(change(run)).content.decode()
    assert f"{changelist(RecordLog)}?run_id={run.pk}" in page
    assert "300 / 254" in page and "[email]" in page  # redacted even for a PII viewer
    assert "partial" in page and "3.0 s" in page
    empty = SyncRun.objects.create(source="sellers", target="sellers.seller")
    page = client_for("viewer").get(change(empty)).content.decode()
    assert "No errors." in page


def test_badges_and_durations_read_well(client_for, console_rows):
    long_run = SyncRun.objects.create(
        source="buyers",
        target="buyers.buyer",
        status=SyncRun.Status.FAILED,
        started_at=console_rows["run"].started_at,
        finished_at=console_rows["run"].started_at + datetime.timedelta(minutes=5),
    )
    page = client_for("viewer").get(changelist(SyncRun)).content.decode()
    assert "console-badge" in page and "5 min 00 s" in page and long_run.source in page
    for model in (
        "syncalert",
        "syncintent",
        "recordretry",
        "syncmetric",
        "synchealthmetric",
        "staffaction",
        "syncconfig",
    ):
        response = client_for("viewer").get(reverse(f"admin:sync_{model}_changelist"))
        assert response.status_code == 200, model


def config_form(config, **changes) -> dict[str, str]:
    fields = (
        "enabled",
        "interval_seconds",
        "batch_size",
        "auto_recovery",
        "recipients",
        "failure_threshold",
        "gap_threshold",
        "no_success_hours",
        "error_rate_threshold",
        "permanent_failure_threshold",
        "long_run_minutes",
        "degradation_ratio",
        "retry_queue_threshold",
        "oldest_intent_seconds",
        "dead_intent_threshold",
        "retention_days",
    )
    data = {name: getattr(config, name) for name in fields}
    data.update(changes)
    return {
        k: ("on" if v is True else "" if v is False else str(v))
        for k, v in data.items()
        if v is not False
    }


def test_an_operator_edits_the_configuration_and_beat_follows(client_for, role_users):
    from django_celery_beat.models import PeriodicTask

    from sync.models import StaffAction, SyncConfig
    from sync.ops.source_settings import config_for, task_name

    config = config_for("engine")
    url = change(config)
    client = client_for("operator")
    response = client.post(url, config_form(config, interval_seconds=120))
    assert response.status_code == 302, response.context["adminform"].form.errors
    config = SyncConfig.objects.get(source="engine")
    assert (config.interval_seconds, config.version) == (120, 2)
    assert PeriodicTask.objects.get(name=task_name("engine")).interval.every == 120
    action = StaffAction.objects.get(action="config.update")
    assert (action.user, action.target, action.details) == (
        role_users["operator"],
        "engine",
        {"interval_seconds": 120},
    )

    # The model's ranges and config_validate's addresses are the form's errors.
    bad = client.post(url, config_form(config, interval_seconds=5))
    assert bad.status_code == 200
    assert set(bad.context["adminform"].form.errors) == {"interval_seconds"}
    admin = client_for("superuser")  # recipients are addresses: PII viewers edit them
    bad = admin.post(url, config_form(config, recipients="ops@staff.example, not-an-address"))
    assert "not-an-address" in str(bad.context["adminform"].form.errors["recipients"])
    assert admin.post(url, config_form(config, recipients="ops@staff.example")).status_code == 302
    assert StaffAction.objects.filter(action="config.update").order_by("id").last().details == {
        "recipients": "(changed)"
    }
    unchanged = client.post(url, config_form(config))
    assert unchanged.status_code == 302
    assert SyncConfig.objects.get(source="engine").version == 3
    assert StaffAction.objects.filter(action="config.update").count() == 3


def test_a_viewer_sees_the_configuration_read_only_with_recipients_masked(client_for):
    from sync.ops.source_settings import config_update

    config = config_update(source="engine", recipients="ops@staff.example, b@c.org")
    response = client_for("viewer").get(change(config))
    page = response.content.decode()
    assert not response.context["has_change_permission"]
    assert "o***@s***.example, b***@c***.org" in page and "ops@staff.example" not in page
    assert client_for("viewer").post(change(config), config_form(config)).status_code == 403
    # A PII viewer sees them; an operator without the PII role edits all but them.
    assert "ops@staff.example" in client_for("pii_viewer").get(change(config)).content.decode()
    form = client_for("operator").get(change(config)).context["adminform"].form
    assert "recipients" not in form.fields and "interval_seconds" in form.fields


ENGINE_ONLY = (
    "retry_queue_threshold",
    "oldest_intent_seconds",
    "dead_intent_threshold",
    "retention_days",
)
SOURCE_ONLY = (
    "batch_size",
    "auto_recovery",
    "failure_threshold",
    "gap_threshold",
    "no_success_hours",
    "error_rate_threshold",
    "permanent_failure_threshold",
    "long_run_minutes",
    "degradation_ratio",
)


def test_a_source_page_shows_the_source_settings_and_the_engine_page_the_engine_ones(client_for):
    from django.core.exceptions import ValidationError

    from sync.ops.source_settings import config_for, config_update

    client = client_for("operator")
    source = client.get(change(config_for("buyers")))
    form = source.context["adminform"].form
    page = source.content.decode()
    assert not set(ENGINE_ONLY) & set(form.fields), "engine settings on a source's page"
    assert set(SOURCE_ONLY) <= set(form.fields)
    assert "Cache retry queue" not in page and "they are on the engine row" in page
    engine = client.get(change(config_for("engine")))
    form = engine.context["adminform"].form
    assert set(ENGINE_ONLY) <= set(form.fields) and not set(SOURCE_ONLY) & set(form.fields)
    assert "Cache retry queue alerts" in engine.content.decode()

    # The list says which is which, the engine first; numbers and times in the console's form.
    listing = client.get(reverse("admin:sync_syncconfig_changelist"))
    names = [row.source for row in listing.context["cl"].result_list]
    assert names == ["engine", "buyers"]
    text = listing.content.decode()
    assert "every source: cache retry queue, retention" in text and "5 min 00 s" in text

    # A setting posted to the wrong row is refused, naming it (the API goes through this too).
    with pytest.raises(ValidationError) as refused:
        config_update(source="buyers", retry_queue_threshold=5)
    assert "engine" in " ".join(refused.value.message_dict["retry_queue_threshold"])
    with pytest.raises(ValidationError) as refused:
        config_update(source="engine", batch_size=5)
    assert list(refused.value.message_dict) == ["batch_size"]


def test_queue_states_alert_states_and_empty_figures_read_well(client_for, console_rows):
    from sync.models import RecordRetry, SyncAlert, SyncHealthMetric, SyncIntent

    SyncIntent.objects.filter(pk=console_rows["intent"].pk).update(status="dead")
    RecordRetry.objects.filter(pk=console_rows["retry"].pk).update(status="permanently_failed")
    SyncHealthMetric.objects.create(source="sellers")  # a check that could not count
    ErrorLog.objects.create(
        run_id=console_rows["run"].pk,
        source="buyers",
        category="network",
        reason="timeout",
        value_length=12,
    )
    ErrorLog.objects.create(
        run_id=console_rows["run"].pk, source="buyers", category="unknown", reason="odd"
    )
    SyncAlert.objects.create(
        alert_type="gaps", source="sellers", message="old", acknowledged_at="2026-01-01T00:00:00Z"
    )
    client = client_for("viewer")

    def page(model: str, params=None) -> str:
        return client.get(reverse(f"admin:sync_{model}_changelist"), params).content.decode()

    assert ">dead<" in page("syncintent")
    assert ">permanently failed<" in page("recordretry")
    # A length says something only beside its column's limit (a bad date's length does not).
    assert '<td class="field-column_text">-</td>' in page(
        "errorlog", {"category__exact": "network"}
    )
    assert "300 / 254" in page("errorlog", {"category__exact": "schema"})
    assert (
        client.get(reverse("admin:sync_errorlog_changelist"), {"category__exact": "unknown"})
        .context["cl"]
        .result_list[0]
        .reason
        == "odd"
    )
    health = client.get(reverse("admin:sync_synchealthmetric_changelist"), {"source": "sellers"})
    assert health.context["cl"].result_count == 1
    alerts = reverse("admin:sync_syncalert_changelist")
    assert client.get(alerts, {"state": "open"}).context["cl"].result_count == 1
    assert client.get(alerts, {"state": "acknowledged"}).context["cl"].result_count == 1
    assert client.get(alerts).context["cl"].result_count == 2


def test_date_ranges_on_date_fields_and_rubbish_dates(client_for, console_rows):
    client = client_for("viewer")
    buyers = changelist(type(console_rows["buyer"]))
    inside = {"inquiry_date__gte": "2026-11-01", "inquiry_date__lt": "2026-11-03"}
    assert client.get(buyers, inside).context["cl"].result_count == 1
    assert client.get(buyers, {"inquiry_date__gte": "2026-11-03"}).context["cl"].result_count == 0
    # Not a date: a 400 saying so (Django went back to the list with ?e=1 and
    # showed its "database error" page), never a 500.
    response = client.get(changelist(SyncRun), {"created_at__gte": "yesterday"})
    assert response.status_code == 400 and "invalid format" in response.content.decode()


def test_a_masked_field_is_shown_once_where_django_lists_the_fields(client_for, console_rows):
    response = client_for("viewer").get(change(console_rows["error"]))
    fields = [
        name
        for fieldset in response.context["adminform"].fieldsets
        for entry in fieldset[1]["fields"]
        for name in (entry if isinstance(entry, tuple) else (entry,))
    ]
    assert fields.count("reason_redacted") == 1 and "reason" not in fields


def test_fieldsets_drop_a_row_left_empty_by_the_swap(viewer):
    from django.contrib import admin as django_admin
    from django.test import RequestFactory

    from buyers.models import Buyer
    from sync.console.admin_base import SyncedModelAdmin

    class Twice(SyncedModelAdmin):
        fieldsets = ((None, {"fields": ("email", ("email_masked",), ("buyer_number",))}),)

    request = RequestFactory().get("/")
    request.user = viewer
    fieldsets = Twice(Buyer, django_admin.site).get_fieldsets(request)
    assert fieldsets[0][1]["fields"] == ["email_masked", ("buyer_number",)]


def test_a_json_field_read_as_a_table_is_shown_once_in_a_fieldset_row(viewer, console_rows):
    """A fieldset row naming a JSON field shows its table instead; a row left with nothing
    new after the swap is dropped, not shown as an empty line."""
    from django.contrib import admin as django_admin
    from django.test import RequestFactory

    from sync.console.admin_base import ConsoleModelAdmin

    class Rows(ConsoleModelAdmin):
        fieldsets = (
            (None, {"fields": (("source", "verification"), ("verification_table",), "phase_ms")}),
        )

    request = RequestFactory().get("/")
    request.user = viewer
    fieldsets = Rows(SyncRun, django_admin.site).get_fieldsets(request, console_rows["run"])
    assert fieldsets[0][1]["fields"] == [("source", "verification_table"), "phase_ms_table"]


def test_the_trigger_filter_names_its_choices_as_people_write_them(client_for, console_rows):
    page = client_for("viewer").get(reverse("admin:sync_recordlog_changelist")).content.decode()
    for label in ("API", "Demo data", "Missing rows", "Schedule"):
        assert f">{label}</a>" in page, label
    assert ">Api</a>" not in page
