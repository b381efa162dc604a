"""Errors a user can act on. The CLI prints them as one line, without a traceback."""


class LeverloopError(Exception):
    """Base class for errors with a message written for the operator."""


class ConfigurationError(LeverloopError):
    """A setting is missing, malformed or points at something unreachable."""


class InputContractError(LeverloopError):
    """An input file as a whole cannot be read under the input contract."""
