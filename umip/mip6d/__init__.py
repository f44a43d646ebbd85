"""mip6d: the iro mobility daemon and the kernel interfaces it drives."""

__version__ = "0.1.0"
