"""App Container Images: compression, archive reading and validation, building from a layout."""
