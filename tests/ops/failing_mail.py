"""A mail backend whose server refuses every message (an SMTP outage, without a server)."""

from __future__ import annotations

import smtplib

from django.core.mail.backends.base import BaseEmailBackend


class EmailBackend(BaseEmailBackend):
    def send_messages(self, email_messages) -> int:
        msg = "connection unexpectedly closed"
        raise smtplib.SMTPServerDisconnected(msg)
