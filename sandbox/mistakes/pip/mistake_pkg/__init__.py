"""A package whose only purpose is to leave pip's cache behind."""
