"""Build, boot and test pipeline for the iro kernel series."""
