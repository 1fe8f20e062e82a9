"""Getting images into the store: references, appc discovery, HTTP, signatures, pull policies."""
