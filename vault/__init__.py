"""The credential vault: one CredentialVault interface; embedded and HashiCorp Vault backends."""
