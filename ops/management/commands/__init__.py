"""manage.py check_worker."""
