"""Pieces of the training loop in :mod:`ilrm.train`: data streams, losses, optimiser and schedule,
distributed helpers, checkpoints and logs. Import the public API from :mod:`ilrm.train`."""
