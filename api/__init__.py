"""The campaign config API (FastAPI + SQLAlchemy 2, schema owned by Alembic)."""
