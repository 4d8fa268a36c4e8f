"""PII shown to people without the PII role: enough to recognise, not to read.

``mask_email("john.doe@example.com") == "j***@e***.com"``; phone numbers keep their last two
digits; any other PII text keeps its first character. Empty values stay empty.
"""

from __future__ import annotations

import re

MASK = "***"


def mask_email(value: str) -> str:
    local, at, domain = (value or "").strip().partition("@")
    if not at:
        return mask_text(value)
    host, dot, tld = domain.rpartition(".")
    if not dot:
        host, tld = domain, ""
    masked_domain = f"{host[:1]}{MASK}" + (f".{tld}" if tld else "")
    return f"{local[:1]}{MASK}@{masked_domain}"


def mask_phone(value: str) -> str:
    digits = re.sub(r"\D", "", value or "")
    if not digits:
        return ""
    return f"{MASK}{digits[-2:]}" if len(digits) > 4 else MASK


def mask_text(value: str) -> str:
    value = (value or "").strip()
    return f"{value[:1]}{MASK}" if value else ""


def mask_email_list(value: str) -> str:
    """Comma- or semicolon-separated addresses (alert recipients), each masked."""
    addresses = [a.strip() for a in (value or "").replace(";", ",").split(",") if a.strip()]
    return ", ".join(mask_email(address) for address in addresses)


def mask(value: object, *, kind: str = "text") -> str:
    """Mask ``value`` as an ``email``, a list of ``emails``, a ``phone`` or plain ``text``."""
    text = "" if value is None else str(value)
    if kind == "emails":
        return mask_email_list(text)
    if kind == "email" or ("@" in text and kind == "text"):
        return mask_email(text)
    if kind == "phone":
        return mask_phone(text)
    return mask_text(text)
