"""Sending invitations: by SMTP when SMTP_HOST is set, otherwise into an outbox folder.

The outbox serves `make run`, which has no mail server: each message is written as an .eml file
(mode 0600) that the operator opens to pass the sign-up link on. The log names the file, never the
invite token (docs/decisions/0013-tenants-invite-delivery.md).
"""

from __future__ import annotations

import logging
import os
import smtplib
import uuid
from email.message import EmailMessage
from pathlib import Path

from services.common.errors import Unavailable

log = logging.getLogger("tradebot.tenants.mailer")


class Mailer:
    def __init__(
        self, *, host: str, port: int, sender: str, starttls: bool, outbox: Path, link_base: str
    ) -> None:
        self.host, self.port, self.sender, self.starttls = host, port, sender, starttls
        self.outbox = outbox
        self.link_base = link_base

    def invite(self, *, to: str, token: str, tenant_hint: str, role: str, expire_text: str) -> None:
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = to
        message["Subject"] = "Your Tradebot invitation"
        link = f"{self.link_base}{token}"
        message.set_content(
            f"You have been invited to Tradebot ({tenant_hint}) as {role}.\n\n"
            f"Sign up here: {link}\n\nor enter this invite code on the sign-up page: {token}\n\n"
            f"The invitation can be used once and expires {expire_text}.\n"
        )
        self.send(message)

    def send(self, message: EmailMessage) -> None:
        if not self.host:
            self._to_outbox(message)
            return
        try:
            with smtplib.SMTP(self.host, self.port, timeout=10) as smtp:
                if self.starttls:
                    smtp.starttls()
                smtp.send_message(message)
        except (OSError, smtplib.SMTPException) as error:
            raise Unavailable(
                f"the invitation email could not be sent ({type(error).__name__}); retry"
            ) from None
        log.info("email sent", extra={"to": message["To"], "subject": message["Subject"]})

    def _to_outbox(self, message: EmailMessage) -> None:
        self.outbox.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = self.outbox / f"{uuid.uuid4().hex}.eml"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(bytes(message))
        log.warning(
            "SMTP_HOST is not set: email written to the outbox instead",
            extra={"to": message["To"], "subject": message["Subject"], "path": str(path)},
        )
