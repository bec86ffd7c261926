"""manage.py commands of the job engine."""
