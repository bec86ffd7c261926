"""manage.py commands for operators."""
