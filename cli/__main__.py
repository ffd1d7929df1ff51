"""``python -m cli``: the same as the ``recon`` console script."""

from cli.main import cli

cli()
