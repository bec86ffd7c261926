"""``manage.py set_role <username> <viewer|operator|admin>``: give a user their role."""

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.roles import Role
from accounts.services import set_role


class Command(BaseCommand):
    help = "Give a user of AccessHive a role (created with an unusable password if new)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("role", choices=Role.values)

    def handle(self, *args: Any, **options: Any) -> None:
        users = get_user_model().objects
        user = users.filter(username=options["username"]).first()
        if user is None:
            if not options["username"].strip():
                raise CommandError("username must not be empty")
            user = users.create_user(username=options["username"])
        changed = set_role(user, options["role"], actor=None)
        verb = "is now" if changed else "already is"
        self.stdout.write(f"{user.get_username()} {verb} {options['role']}")
