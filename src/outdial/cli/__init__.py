"""The `outdial` command-line tool."""
