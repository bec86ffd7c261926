"""Identity sources (Google Workspace, LDAP/AD), directory sync and joiner/mover/leaver jobs."""
