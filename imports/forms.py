"""The upload form of the import page."""

from django import forms


class ImportUploadForm(forms.Form):
    file = forms.FileField(
        label="CSV file",
        # The import's own check names an empty file, as it does for the API.
        allow_empty_file=True,
        widget=forms.ClearableFileInput(attrs={"accept": ".csv,text/csv"}),
        error_messages={"required": "Choose a CSV file to upload."},
    )
    dry_run = forms.BooleanField(
        required=False,
        label="Dry run: check every row, create nothing",
    )
