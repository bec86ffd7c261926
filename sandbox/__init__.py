"""Local servers that speak Google's, SCIM's and Vault's wire protocols, for make run and tests."""
