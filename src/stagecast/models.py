"""Import every domain's tables so that the metadata (and Alembic) sees all of them."""


def import_all_models() -> None:
    """Register every table on `Base.metadata`."""
    import stagecast.accounts.models
    import stagecast.admin.models
    import stagecast.channels.models
    import stagecast.chat.models
    import stagecast.clips.models
    import stagecast.interactions.models
    import stagecast.kyc.models
    import stagecast.media.models
    import stagecast.moderation.models
    import stagecast.money.models
    import stagecast.notifications.models
    import stagecast.privacy.models
    import stagecast.search
    import stagecast.streams.models
    import stagecast.tournaments.models
    import stagecast.vods.models  # noqa: F401
