"""Errors the pipeline raises on purpose: their message is the whole story for the user."""


class PipelineError(Exception):
    """Bad input or configuration; the message names the file/key and what to do."""


class DataError(PipelineError):
    """A raw dataset file is missing, malformed or inconsistent."""


class ConfigError(PipelineError):
    """The configuration is invalid."""
