"""Entry point for `python -m canary_deploy`."""

from canary_deploy.cli.app import main

main()
