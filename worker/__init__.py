"""taskstore's arq worker, its producer client, settings and CLI."""
