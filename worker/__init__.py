"""The worker service: consumes `toWorker`, analyses images, writes the indexes into Redis."""
