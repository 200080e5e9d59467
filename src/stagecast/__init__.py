"""Stagecast: a self-hostable live-streaming platform for creators."""

__version__ = "0.1.0"
