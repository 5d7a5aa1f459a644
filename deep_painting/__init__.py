"""The `deep-painting` command: a thin dispatcher over the packages' own command lines."""
