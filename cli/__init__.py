"""The `llmproxy` command line."""
