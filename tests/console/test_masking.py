"""``sync.console.masking``: enough of a value to recognise it, never enough to read it."""

from __future__ import annotations

import pytest

from sync.console.masking import mask, mask_email, mask_email_list, mask_phone, mask_text


@pytest.mark.parametrize(
    ("value", "masked"),
    [
        ("john.doe@example.com", "j***@e***.com"),
        ("  Kemal.Eriksen@EXAMPLE.co.uk ", "K***@E***.uk"),
        ("root@localhost", "r***@l***"),
        ("no-at-sign", "n***"),
        ("", ""),
    ],
)
def test_email(value, masked):
    assert mask_email(value) == masked


@pytest.mark.parametrize(
    ("value", "masked"),
    [
        ("+1 (555) 010-4477", "***77"),
        ("1234", "***"),
        ("no digits", ""),
        ("", ""),
    ],
)
def test_phone_keeps_only_its_last_two_digits(value, masked):
    assert mask_phone(value) == masked


def test_text_keeps_its_first_character():
    assert mask_text("  Jane Roe ") == "J***"
    assert mask_text("") == ""


def test_a_list_of_addresses_is_masked_address_by_address():
    assert mask_email_list("ops@example.com; oncall@example.org,,") == (
        "o***@e***.com, o***@e***.org"
    )
    assert mask_email_list("") == ""


@pytest.mark.parametrize(
    ("value", "kind", "masked"),
    [
        ("john@example.com", "email", "j***@e***.com"),
        ("john@example.com", "text", "j***@e***.com"),  # an address in a text field is one
        ("555-010-4477", "phone", "***77"),
        ("12 Main Street", "text", "1***"),
        ("a@b.com, c@d.com", "emails", "a***@b***.com, c***@d***.com"),
        (None, "text", ""),
        (1234567, "phone", "***67"),
    ],
)
def test_mask_dispatches_on_kind(value, kind, masked):
    assert mask(value, kind=kind) == masked


def test_no_masked_value_contains_the_original():
    for value, kind in [
        ("jane.roe.canary@example.com", "email"),
        ("+44 20 7946 0958", "phone"),
        ("Canary Wharf 1", "text"),
    ]:
        assert value not in mask(value, kind=kind)
        assert value.split("@")[0][1:] not in mask(value, kind=kind)
