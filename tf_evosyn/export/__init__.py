"""Deployment: SavedModel and TFLite artifacts of a run's chosen offspring."""
