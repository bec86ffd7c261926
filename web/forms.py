"""How every form is drawn: Django's own form rendering with one template per form and per
field (templates/forms/), and a required select with a single choice starting on it."""

from typing import Any

from django.forms.renderers import TemplatesSetting

SELECT = "django/forms/widgets/select.html"


class FormRenderer(TemplatesSetting):
    """settings.FORM_RENDERER: `{{ form }}` draws label, input, help and errors aligned."""

    form_template_name = "forms/form.html"
    field_template_name = "forms/field.html"

    def render(self, template_name: str, context: dict[str, Any], request: Any = None) -> str:
        if template_name == SELECT:
            preselect_only_choice(context["widget"])
        return super().render(template_name, context, request)


def preselect_only_choice(widget: dict[str, Any]) -> None:
    """A required single select with nothing chosen and one real option: choose it, so the
    admin with one platform doesn't have to (an optional select keeps its empty choice)."""
    if widget["attrs"].get("multiple") or not widget["attrs"].get("required"):
        return
    if any(value for value in widget["value"]):
        return
    options = [option for _, group, _ in widget["optgroups"] for option in group]
    real = [option for option in options if option["value"] not in ("", None)]
    if len(real) == 1:
        real[0]["selected"] = True
        real[0]["attrs"] = {**real[0]["attrs"], "selected": True}
