"""Storage adapters: engine, migrations, repositories (SQLAlchemy over PostgreSQL)."""
