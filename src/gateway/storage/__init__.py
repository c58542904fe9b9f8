"""One small SQL interface over SQLite (embedded default) and PostgreSQL (given a DSN)."""
