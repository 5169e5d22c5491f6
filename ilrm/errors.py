"""The one exception type raised for bad user input (files, uploads, CLI arguments, tensor sizes)."""


class ILRMInputError(ValueError):
    """Input that cannot be used; the message says what to change."""
