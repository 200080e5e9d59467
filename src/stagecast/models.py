"""Import every domain's tables so that the metadata (and Alembic) sees all of them."""


def import_all_models() -> None:
    """Register every table on `Base.metadata`."""
    import stagecast.accounts.models  # noqa: F401
