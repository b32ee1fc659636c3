"""Tornado application, WebSocket handler and per-socket connection object."""
