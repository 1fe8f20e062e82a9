"""OCI and Docker images: references, registries, manifests, layers (issue #13)."""
