"""Training, datasets, networks, export and evaluation: the `train` extra. Never imported at run time."""
