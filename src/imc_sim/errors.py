"""The one exception type the CLI turns into a one-line message and a non-zero exit."""


class ImcSimError(Exception):
    """A problem with the user's input (file, flag, profile, data) worth one clear line."""


class NonFiniteOutputs(ImcSimError):
    """A model (digital, or on a simulated chip) whose outputs hold NaN or infinite values."""
