"""The one error type every pipeline step raises for bad input or a failed step."""


class PipelineError(Exception):
    """A one-line, user-facing error; tasks print it and exit non-zero."""
