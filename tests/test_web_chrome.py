"""What every page shares around its content: a favicon, a refused request logged as one
line, every form drawn the same way, and a required select with one choice chosen already."""

import logging
import sys

import pytest
from django import forms
from django.contrib.staticfiles import finders
from django.test import Client
from django.urls import reverse

from identities.forms import IDENTITY_FORMS
from identities.models import IdentityType
from ops.logs import KeyValueFormatter, RefusalWithoutTracebackFilter
from tests import factories

pytestmark = pytest.mark.django_db


def test_favicon_is_served(client: Client) -> None:
    response = client.get("/favicon.ico")
    assert response.status_code == 301
    icon = response.headers["Location"]
    assert icon.endswith("img/favicon.svg")
    assert finders.find("img/favicon.svg")
    page = client.get(reverse("login")).content.decode()
    assert 'rel="icon"' in page
    assert "img/favicon.svg" in page


def test_a_refused_request_is_one_log_line(client: Client, caplog) -> None:
    client.force_login(factories.make_viewer())
    with caplog.at_level(logging.WARNING, logger="django.request"):
        response = client.get(reverse("accounts:users"))
    assert response.status_code == 403
    [record] = [r for r in caplog.records if r.name == "django.request"]
    assert record.exc_info is None
    line = KeyValueFormatter().format(record)
    assert "\n" not in line
    assert "Traceback" not in line
    assert "/settings/users/" in line
    assert "status_code=403" in line


def test_a_server_error_keeps_its_traceback(caplog) -> None:
    """Only refusals lose the traceback: a 500 is a bug, and its stack is the lead."""
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        record = logging.getLogger("django.request").makeRecord(
            "django.request", logging.ERROR, __file__, 1, "Internal Server Error", (), None
        )
        record.exc_info = sys.exc_info()
    record.status_code = 500
    assert RefusalWithoutTracebackFilter().filter(record)
    assert record.exc_info is not None


class Choose(forms.Form):
    required_one = forms.ChoiceField(choices=[("", "---------"), ("a", "Alpha")])
    required_two = forms.ChoiceField(choices=[("", "---------"), ("a", "Alpha"), ("b", "Beta")])
    optional_one = forms.ChoiceField(choices=[("", "---------"), ("a", "Alpha")], required=False)


def test_a_required_select_with_one_choice_starts_on_it() -> None:
    html = str(Choose())
    one, two, optional = (
        html.split('name="required_one"')[1].split("</select>")[0],
        html.split('name="required_two"')[1].split("</select>")[0],
        html.split('name="optional_one"')[1].split("</select>")[0],
    )
    assert '<option value="a" selected>Alpha</option>' in one
    assert '<option value="a" selected>' not in two
    assert '<option value="a" selected>' not in optional
    # A bound form shows what was sent, even an empty choice that the error is about.
    bound = str(Choose(data={"required_one": "", "required_two": "b"}))
    assert '<option value="b" selected>Beta</option>' in bound


def test_every_field_is_a_row_of_label_input_help_and_errors() -> None:
    form = IDENTITY_FORMS[IdentityType.API_KEY](data={"name": "ci\ndeploy"})
    form.is_valid()
    html = str(form)
    row = html.split('id="field-name"')[1].split('id="field-api_key"')[0]
    label, rest = row.split("</label>", 1)
    assert '<label for="id_name">Name <span class="muted">(required)</span>' in label
    assert rest.index('name="name"') < rest.index('class="help"') < rest.index("field-error")
    assert 'aria-describedby="id_name_helptext id_name_error"' in rest
    assert 'id="id_name_error"' in rest
    assert 'id="id_name_helptext"' in rest
    assert 'class="field field-invalid"' in html
