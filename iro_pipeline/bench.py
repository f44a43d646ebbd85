"""Pipeline benchmark (filled in below)."""


def pipeline() -> None:
    raise NotImplementedError
