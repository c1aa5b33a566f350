"""`python -m cli`: the same as the `llmproxy` console script."""

from cli.main import run

run()
