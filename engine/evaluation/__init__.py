"""Quality figures against exact synthetic ground truth (``tricam eval``)."""
