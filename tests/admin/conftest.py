"""The media server fixture of tests/media, for the ingest tests here."""

from tests.media.conftest import media_server  # noqa: F401
