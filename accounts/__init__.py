"""AccessHive's own users: API tokens for automation and the demo admin."""
