"""Socket commands of tournaments: follow one's `tournament:updated` events."""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from stagecast.realtime.server import RealtimeServer, SocketUser
from stagecast.tournaments import service as tournaments


class TournamentTarget(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    tournament_id: uuid.UUID = Field(alias="tournamentId")


def register(server: RealtimeServer) -> None:
    @server.on("tournament:join", model=TournamentTarget)
    async def tournament_join(
        sid: str, _user: SocketUser, payload: TournamentTarget
    ) -> dict[str, Any]:
        """Join a tournament's room (anyone may watch a bracket); the ack has the bracket."""
        async with server.runtime.db.session() as session, session.begin():
            tournament = await tournaments.get_tournament(session, payload.tournament_id)
            shown = await tournaments.view(session, tournament)
        await server.sio.enter_room(sid, tournaments.tournament_room(tournament.id))
        return {"tournament": shown.model_dump(mode="json")}

    @server.on("tournament:leave", model=TournamentTarget)
    async def tournament_leave(
        sid: str, _user: SocketUser, payload: TournamentTarget
    ) -> dict[str, Any]:
        await server.sio.leave_room(sid, tournaments.tournament_room(payload.tournament_id))
        return {"tournament_id": str(payload.tournament_id)}
