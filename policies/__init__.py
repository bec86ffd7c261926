"""Policies: risky states AccessHive watches for, their violations, and their remediation."""
