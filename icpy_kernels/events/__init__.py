"""Publish/subscribe of execution and session events."""
