"""The `canary` command line: thin commands that parse, call a use-case and render."""
