"""Publishing bundles: model card, Hub upload, release matrix."""
