"""The store: SQLAlchemy 2 async on SQLite (embedded default) or PostgreSQL (psycopg 3)."""
