"""The demo's setup (``python -m devtools.demo_data``) in this process: the superuser and every
app's demo data, twice."""

from __future__ import annotations

from io import StringIO

import pytest
from django.contrib.auth import get_user_model

from buyers.models import Buyer
from catalog.models import Part
from customers.models import Customer, Order
from devtools.demo_data.__main__ import main
from devtools.demo_data.setup import DemoSetupError, demo_setup
from sellers.models import Seller
from sync.cache.bulk import update_synced
from sync.cache.maintenance import verify_models
from sync.models import CacheVerification

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def demo_files(settings, tmp_path):
    """The project's sources file, with the sheets written under this test's folder."""
    from config.env import ROOT

    text = (ROOT / "config" / "ingest_sources.toml").read_text()
    text = text.replace(".run/demo/", f"{tmp_path}/")
    (tmp_path / "sources.toml").write_text(text)
    settings.SYNC_INGEST_SOURCES_FILE = str(tmp_path / "sources.toml")
    return tmp_path


def test_demo_setup_loads_every_app_and_is_idempotent(demo_files, monkeypatch) -> None:
    monkeypatch.setenv("DEMO_ADMIN_PASSWORD", "a-long-demo-password-1")
    out = StringIO()
    demo_setup(count=20, stdout=out)
    assert "created superuser admin" in out.getvalue()
    rows = sum(r.rows for r in verify_models())
    assert f"cache verification: {rows} of {rows} synced rows consistent" in out.getvalue()
    assert CacheVerification.objects.count() == 2  # the demo's and this test's
    admin = get_user_model().objects.get(username="admin")
    assert admin.is_superuser and admin.check_password("a-long-demo-password-1")
    counts = (
        Part.objects.count(),
        Customer.objects.count(),
        Order.objects.count(),
        Buyer.objects.count(),
        Seller.objects.count(),
    )
    # buyers: the whole incident sheet; parts: ten per count (devtools/demo_data/catalog.py)
    assert counts == (200, 20, 200, 4140, 20)
    assert (demo_files / "buyers.csv").is_file()
    versions = dict(Part.objects.values_list("pk", "version"))
    renamed = Part.objects.order_by("pk").first()
    update_synced(Part.objects.filter(pk=renamed.pk), name="Renamed by staff", price=1)
    monkeypatch.setenv("DEMO_ADMIN_PASSWORD", "another-long-password-2")
    again = StringIO()
    demo_setup(count=20, stdout=again)
    assert "reusing superuser admin" in again.getvalue()
    assert "0 created" in again.getvalue() and "(0 new)" in again.getvalue()
    assert (Part.objects.count(), Buyer.objects.count()) == (200, 4140)
    # A second start changes no part: staff's edit stays, no other version moves.
    renamed.refresh_from_db()
    assert (renamed.name, renamed.price) == ("Renamed by staff", 1)
    del versions[renamed.pk]
    assert {pk: v for pk, v in Part.objects.values_list("pk", "version") if pk in versions} == (
        versions
    )
    admin.refresh_from_db()
    assert admin.check_password("another-long-password-2")
    assert all(report.ok for report in verify_models())


def test_demo_setup_needs_the_password(monkeypatch, capsys) -> None:
    monkeypatch.delenv("DEMO_ADMIN_PASSWORD", raising=False)
    with pytest.raises(DemoSetupError, match="DEMO_ADMIN_PASSWORD"):
        demo_setup(stdout=StringIO())
    assert main(["--count", "20"]) == 1
    message = "set DEMO_ADMIN_PASSWORD (./dev demo does this for you)"
    assert capsys.readouterr().err == f"demo data: {message}\n"
    assert not get_user_model().objects.filter(username="admin").exists()
