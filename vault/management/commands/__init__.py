"""manage.py vault_generate_key and vault_rotate_key."""
