"""Template tags of the pam app."""
