"""``manage.py create_demo_admin``: a superuser for trying AccessHive locally."""

import secrets
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandParser


class Command(BaseCommand):
    help = "Create (or reset) the demo superuser and print how to sign in."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--username", default="admin")
        parser.add_argument("--password-file", help="Write the generated password here (mode 600)")

    def handle(self, *args: Any, **options: Any) -> None:
        password = secrets.token_urlsafe(12)
        user, _ = get_user_model().objects.get_or_create(username=options["username"])
        user.is_staff = user.is_superuser = True
        user.set_password(password)
        user.save()
        if options["password_file"]:
            with open(options["password_file"], "w", opener=_private) as fh:
                fh.write(password + "\n")
        self.stdout.write(f"Sign in at http://127.0.0.1:8000/ as {user.username} / {password}")


def _private(path: str, flags: int) -> int:
    import os

    return os.open(path, flags, 0o600)
