"""The role picker of Settings > Users."""

from django import forms

from accounts.queries import NO_ROLE_LABEL
from accounts.roles import Role

ROLE_CHOICES = [("", NO_ROLE_LABEL), *Role.choices]


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=ROLE_CHOICES, required=False)
