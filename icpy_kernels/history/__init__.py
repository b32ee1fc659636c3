"""The SQLite execution history."""
