"""The typed JSON API (/api/v1/) on django-ninja: schemas, auth, problem details, paging."""
