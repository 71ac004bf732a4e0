"""The obvious ways to do each job without taskstore, kept short and honest."""
