"""Database access: engine, sessions, the declarative base and portable types."""

from stagecast.db.base import Base, TimestampMixin, UTCDateTime, new_id, utcnow
from stagecast.db.engine import Database

__all__ = ["Base", "Database", "TimestampMixin", "UTCDateTime", "new_id", "utcnow"]
