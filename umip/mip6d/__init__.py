"""mip6d: the iro mobility daemon and the kernel interfaces it drives."""
