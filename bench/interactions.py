"""Interactions at the size of a big room: reactions and a poll on top of the chat benchmark.

What it measures (issue 16)
    One live room (a real ffmpeg publisher over RTMP, 320x180), N signed-in viewers (default
    5,000) on real websocket connections from separate client processes, and chat flowing as in
    bench/chat_fanout.py (3 senders, 10 messages/s in all, each carrying its send time). Two
    runs, in one invocation, on one server:

    chat only          the chat load alone (the baseline)
    with interactions  the same chat, and every viewer sends `reaction:send` once a second for
                       the whole window, and a poll opens at the start: each viewer casts its
                       `poll:vote` once, at a random moment of the first 10 s

    Each viewer counts, per second, the events it receives (`reaction:sent`, `poll:voted`,
    `chat:message`) and the latency of every chat message. After the window the poll is ended
    and its final tallies (`poll:ended`, and GET /polls/{id}) are compared with the votes the
    viewers had acknowledged.

How to read the table
    viewers          viewers connected and joined (of those asked)
    reactions/s      reactions the viewers sent per second, and how many the server took
    votes            votes sent, acknowledged ok, and counted in the final tallies
    events/s/viewer  reaction + poll events one viewer received per second (mean and max over
                     viewers and seconds)
    chat p50/p99     chat latency, send to arrival (ms)
    ack p50/p99      a reaction's time from its send to its ack (ms): how long anything a
                     viewer sends waits for the server
    server CPU       the server process's CPU over the window (100% = one core)

    Goals: chat p99 with interactions under 250 ms; every acknowledged vote counted; at most
    10 reaction/poll events a second for any viewer.

    The clients share the machine's two cores with the server: compare the two rows of one run.

Usage
    .venv/bin/python bench/interactions.py [--viewers 5000] [--duration 20] [--procs 4]
        [--vote-window 10] [--only with|without] [--senders 3] [--database-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import random
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from array import array
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import imageio_ffmpeg
import kit
from chat_fanout import (
    Deliveries,
    SocketIOClient,
    Target,
    Workers,
    _summarize,
    collect_acks,
    cpu_seconds,
    latencies_of,
    open_and_join,
    percentile,
    receive,
    receiver,
    run_loop,
    send_on_schedule,
    split,
    stagecast_env,
    stop_workers,
)
from serving import database_for, free_port, launched, register_creators, stagecast_command
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import create_async_engine

from stagecast.accounts.models import AuthSession, User
from stagecast.accounts.security import TokenSigner
from stagecast.config import Settings

GOAL_P99_MS = 250.0
SERVER_LOG = kit.RESULTS_DIR / "interactions-server.log"
GOAL_EVENTS_PER_S = 10


@dataclass(frozen=True)
class Room:
    target: Target
    stream_id: str
    owner_token: str
    viewer_tokens: tuple[str, ...]
    base_url: str


@dataclass
class RunResult:
    run: str
    viewers: int
    connected: int
    reactions_sent: int
    reactions_accepted: int
    votes_sent: int
    votes_accepted: int
    votes_counted: int
    events_mean_per_s: float
    events_max_per_s: int
    chat_sent: int
    chat_delivered_pct: float
    chat_p50_ms: float
    chat_p99_ms: float
    # How long the server took to answer a reaction: the wait of anything a viewer sends.
    reaction_ack_p50_ms: float
    reaction_ack_p99_ms: float
    server_cpu_pct: float
    duration: float
    errors: list[str] = field(default_factory=list)


# --- the viewers ---------------------------------------------------------------------------


def interaction_counter(seconds: Counter[int], t0: float) -> Any:
    """Count each reaction/poll event under the second of the window it arrived in."""
    names = ('42["reaction:sent"', '42["poll:voted"', '42["poll:ended"', '42["poll:created"')

    def on_event(packet: str) -> None:
        if packet.startswith(names):
            seconds[int(time.time() - t0)] += 1

    return on_event


async def viewer_main(
    pipe: Connection, room: Room, tokens: list[str], interact: bool, args: argparse.Namespace
) -> None:
    deliveries = Deliveries()
    chat = receiver(room.target, deliveries)
    per_viewer: list[Counter[int]] = [Counter() for _ in tokens]
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        clients: list[SocketIOClient] = []
        errors: list[str] = []
        batch = max(1, args.batch // args.procs)
        for start in range(0, len(tokens), batch):
            opened = await asyncio.gather(
                *(
                    open_and_join(session, room.target, {"token": t}, args.connect_timeout)
                    for t in tokens[start : start + batch]
                ),
                return_exceptions=True,
            )
            for item in opened:
                if isinstance(item, SocketIOClient):
                    clients.append(item)
                else:
                    errors.append(repr(item))
        pipe.send({"connected": len(clients), "errors": _summarize(errors)})
        t0, stop_at, poll_id = await asyncio.to_thread(pipe.recv)
        for index, client in enumerate(clients):
            counter = interaction_counter(per_viewer[index], t0)

            def on_event(packet: str, counter: Any = counter) -> None:
                chat(packet)
                counter(packet)

            client.on_event = on_event
        await asyncio.sleep(max(0.0, t0 - time.time()))
        reactions: list[asyncio.Future[Any]] = []
        votes: list[asyncio.Future[Any]] = []
        acked_ms: array[float] = array("d")
        if interact:
            await act(clients, reactions, votes, t0, poll_id, args, acked_ms)
        await asyncio.sleep(max(0.0, stop_at - time.time()))
        reaction_outcome = await collect_acks_of(reactions)
        vote_outcome = await collect_acks_of(votes)
        window = per_viewer[: len(clients)]
        pipe.send(
            {
                "delivered": deliveries.count,
                "latencies": deliveries.latencies_ms.tobytes(),
                "reactions": reaction_outcome,
                "reaction_acks": acked_ms.tobytes(),
                "votes": vote_outcome,
                "max_per_s": max((max(c.values(), default=0) for c in window), default=0),
                "events": sum(sum(c.values()) for c in window),
                "viewers": len(window),
            }
        )
        await asyncio.wait([asyncio.create_task(c.close()) for c in clients] or [asyncio.sleep(0)])


def timer(into: array[float]) -> Any:
    """A done-callback adding the milliseconds from now to its future's end to `into`."""
    started = time.time()
    return lambda _: into.append(1000 * (time.time() - started))


async def act(
    clients: list[SocketIOClient],
    reactions: list[asyncio.Future[Any]],
    votes: list[asyncio.Future[Any]],
    t0: float,
    poll_id: str,
    args: argparse.Namespace,
    acked_ms: array[float],
) -> None:
    """Every viewer reacts once a second (spread over the second) and votes once, at a random
    moment of the vote window; `acked_ms` gets each reaction's time to its ack."""
    rng = random.Random()  # noqa: S311 - when to react, not a secret
    vote_at = {i: t0 + rng.uniform(0, args.vote_window) for i in range(len(clients))}
    offsets = [rng.random() for _ in clients]
    emotes = ["scHype", "scGG", "scFire", "scLol"]
    for second in range(int(args.duration)):
        schedule = sorted(range(len(clients)), key=lambda i: offsets[i])
        for index in schedule:
            at = t0 + second + offsets[index]
            delay = at - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
            client = clients[index]
            if client.closed:
                continue
            sent = await client.emit("reaction:send", {"emoji": emotes[index % len(emotes)]})
            sent.add_done_callback(
                lambda _, at=time.time(): acked_ms.append(1000 * (time.time() - at))
            )
            reactions.append(sent)
            if index in vote_at and time.time() >= vote_at[index]:
                del vote_at[index]
                votes.append(
                    await client.emit("poll:vote", {"pollId": poll_id, "choice": index % 3})
                )
    for index in list(vote_at):  # a vote window longer than the run: vote now
        votes.append(
            await clients[index].emit("poll:vote", {"pollId": poll_id, "choice": index % 3})
        )


async def collect_acks_of(futures: list[asyncio.Future[Any]]) -> dict[str, Any]:
    if futures:
        await asyncio.wait(futures, timeout=15)
    ok = 0
    by_choice: Counter[int] = Counter()
    errors: list[str] = []
    for future in futures:
        if not future.done() or future.exception() is not None:
            errors.append("no ack" if not future.done() else repr(future.exception()))
            continue
        answer = future.result()
        if isinstance(answer, dict) and answer.get("ok"):
            ok += 1
            if "choice" in answer:
                by_choice[int(answer["choice"])] += 1
        else:
            code = answer.get("error", {}).get("code") if isinstance(answer, dict) else answer
            errors.append(str(code))
    return {
        "sent": len(futures),
        "ok": ok,
        "by_choice": dict(by_choice),
        "errors": _summarize(errors),
    }


def viewer_process(
    pipe: Connection, room: Room, tokens: list[str], interact: bool, args: argparse.Namespace
) -> None:
    run_loop(viewer_main(pipe, room, tokens, interact, args))


async def sender_main(
    pipe: Connection, room: Room, tokens: list[str], args: argparse.Namespace
) -> None:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        # The senders connect while the viewers ramp up (they are few), so they may wait as
        # long as the ramp does.
        clients = [
            await open_and_join(session, room.target, {"token": t}, args.ramp_timeout)
            for t in tokens
        ]
        pipe.send({"connected": len(clients), "errors": []})
        t0, stop_at, _ = await asyncio.to_thread(pipe.recv)
        sent = await send_on_schedule(
            clients, room.target, round(args.rate * args.duration), args.rate, t0
        )
        outcome = await collect_acks(sent, stop_at)
        pipe.send({"sent": outcome["sent"], "errors": _summarize(outcome["errors"])})
        await asyncio.wait([asyncio.create_task(c.close()) for c in clients])


def sender_process(
    pipe: Connection, room: Room, tokens: list[str], args: argparse.Namespace
) -> None:
    run_loop(sender_main(pipe, room, tokens, args))


# --- the server and the room ---------------------------------------------------------------


def seed_viewers(data_dir: Path, database_url: str, count: int) -> list[str]:
    """`count` signed-in viewers written straight into the running server's database (a user
    and a session each, in one transaction), with access tokens signed by the server's own key
    (`data_dir/keys`). Registering 5,000 through the API took more than 9 minutes: a password
    hash each and SQLite's writes taking turns; this takes seconds, and the server sees the
    same rows a registration and a sign-in would have left."""
    settings = Settings(data_dir=data_dir, database_url=database_url)
    signer = TokenSigner(settings)
    prefix = "iv" + secrets.token_hex(3)
    expires = datetime.now(UTC) + timedelta(days=1)
    users = [
        {
            "id": uuid.uuid4(),
            "email": f"{prefix}{index}@example.com",
            "username": f"{prefix}{index}",
            "username_key": f"{prefix}{index}",
            "display_name": f"{prefix}{index}",
            "password_hash": "!bench",  # no password: these viewers never sign in
            "preferences": {},
        }
        for index in range(count)
    ]
    sessions = [
        {"id": uuid.uuid4(), "user_id": user["id"], "expires_at": expires} for user in users
    ]

    async def write() -> None:
        engine = create_async_engine(settings.resolved_database_url)
        try:
            async with engine.begin() as connection:
                await connection.execute(insert(User.__table__), users)
                await connection.execute(insert(AuthSession.__table__), sessions)
        finally:
            await engine.dispose()

    asyncio.run(write())
    return [
        signer.issue_access(user_id=user["id"], session_id=row["id"], role="viewer")[0]
        for user, row in zip(users, sessions, strict=True)
    ]


@contextlib.contextmanager
def publisher(rtmp_port: int, key: str, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    command = [
        imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-nostdin",
        "-re", "-f", "lavfi", "-i", "testsrc2=size=320x180:rate=15",
        "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "15",
        "-f", "flv", f"rtmp://127.0.0.1:{rtmp_port}/live/{key}",
    ]  # fmt: skip
    with open(log, "wb") as errors:
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=errors)  # noqa: S603
    try:
        yield process
    finally:
        process.terminate()
        process.wait(timeout=10)


@contextlib.contextmanager
def stagecast_room(args: argparse.Namespace) -> Iterator[tuple[Room, int]]:
    port, rtmp_port = free_port(), free_port()
    with (
        tempfile.TemporaryDirectory(prefix="stagecast-interactions-") as tmp,
        contextlib.ExitStack() as stack,
        database_for(args.database_url) as database,
    ):
        data_dir = Path(tmp)
        env = stagecast_env(data_dir)
        if database.url:
            env["STAGECAST_DATABASE_URL"] = database.url
        # Cheap password hashing for the senders (the viewers are seeded, see seed_viewers).
        cheap = {"TIME_COST": "1", "MEMORY_KIB": "8192", "PARALLELISM": "1"}
        env.update({f"STAGECAST_PASSWORD_{name}": value for name, value in cheap.items()})
        env["STAGECAST_RTMP_PORT"] = str(rtmp_port)
        base = f"http://127.0.0.1:{port}"
        server_log = data_dir / "server.log"
        # The server's log outlives the run (its errors explain an answer like INTERNAL_ERROR).
        stack.callback(keep_log, server_log)
        with launched(
            stagecast_command(port), env=env, cwd=data_dir, log=server_log,
            ready_url=f"{base}/readyz",
        ) as process:  # fmt: skip
            with httpx.Client(base_url=base, timeout=30) as http:
                creators = register_creators(http, "interactions_sender", args.senders)
                owner = creators[0]
                key = http.get("/api/v1/live/streams/me/key", headers=owner.headers).json()
            print(f"seeding {args.viewers} viewers...", file=sys.stderr, flush=True)
            tokens = seed_viewers(data_dir, database.resolved_url(data_dir), args.viewers)
            with publisher(rtmp_port, key["stream_key"], data_dir / "ffmpeg.log"):
                stream_id = wait_live(base, owner.channel_id)
                yield (
                    Room(
                        target=Target(
                            name="stagecast",
                            ws_url=f"ws://127.0.0.1:{port}/socket.io/?EIO=4&transport=websocket",
                            join_event="stream:join",
                            send_event="chat:send",
                            message_event="chat:message",
                            channel_id=owner.channel_id,
                            sender_tokens=tuple(c.access_token for c in creators),
                        ),
                        stream_id=stream_id,
                        owner_token=owner.access_token,
                        viewer_tokens=tuple(tokens),
                        base_url=base,
                    ),
                    process.pid,
                )


def keep_log(log: Path) -> None:
    if log.exists():
        SERVER_LOG.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(log, SERVER_LOG)


def wait_live(base: str, channel_id: str, within: float = 30) -> str:
    deadline = time.time() + within
    with httpx.Client(base_url=base, timeout=10) as http:
        while time.time() < deadline:
            channel = http.get(f"/api/v1/channels/{channel_id}").json()
            if channel.get("live_stream_id"):
                return str(channel["live_stream_id"])
            time.sleep(0.5)
    raise RuntimeError("the publisher's stream did not go live")


# --- a run -----------------------------------------------------------------------------------


def start_poll(room: Room) -> str:
    with httpx.Client(base_url=room.base_url, timeout=30) as http:
        response = http.post(
            "/api/v1/polls",
            json={"stream_id": room.stream_id, "question": "Which one?",
                  "choices": ["A", "B", "C"], "duration": 1800},
            headers={"Authorization": f"Bearer {room.owner_token}"},
        )  # fmt: skip
        response.raise_for_status()
        return str(response.json()["id"])


def end_poll(room: Room, poll_id: str) -> list[int]:
    # The server may still be draining 5,000 sockets' worth of work: wait for it.
    with httpx.Client(base_url=room.base_url, timeout=180) as http:
        response = http.post(
            f"/api/v1/polls/{poll_id}/end",
            headers={"Authorization": f"Bearer {room.owner_token}"},
        )
        response.raise_for_status()
        return [c["votes"] for c in response.json()["choices"]]


def run(room: Room, pid: int, interact: bool, args: argparse.Namespace) -> RunResult:
    context = multiprocessing.get_context("spawn")
    shares = split(len(room.viewer_tokens), args.procs)
    tokens = list(room.viewer_tokens)
    pipes, processes = [], []
    start = 0
    for share in shares:
        mine, theirs = context.Pipe()
        chunk = tokens[start : start + share]
        start += share
        worker = context.Process(
            target=viewer_process, args=(theirs, room, chunk, interact, args), daemon=True
        )
        worker.start()
        pipes.append(mine)
        processes.append(worker)
    mine, theirs = context.Pipe()
    sender = context.Process(
        target=sender_process, args=(theirs, room, list(room.target.sender_tokens), args),
        daemon=True,
    )  # fmt: skip
    sender.start()
    pipes.append(mine)
    processes.append(sender)
    try:
        ramp_started = time.time()
        ready = [receive(pipe, time.time() + args.ramp_timeout) for pipe in pipes]
        print(
            f"  {sum(r['connected'] for r in ready[:-1])} viewers connected and joined in "
            f"{time.time() - ramp_started:.0f} s",
            file=sys.stderr, flush=True,
        )  # fmt: skip
        # After the ramp: opening 5,000 sockets keeps the server too busy for anything else.
        poll_id = start_poll(room) if interact else ""
        t0 = time.time() + 1.0
        stop_at = t0 + args.duration + args.grace
        for pipe in pipes:
            pipe.send((t0, stop_at, poll_id))
        time.sleep(max(0.0, t0 - time.time()))
        cpu_before = cpu_seconds(pid)
        done = [receive(pipe, stop_at + 90) for pipe in pipes]
        server_cpu = (cpu_seconds(pid) - cpu_before) / (time.time() - t0)
    finally:
        stop_workers(Workers(processes, pipes))
    counted = end_poll(room, poll_id) if interact else []
    viewers_done, sender_done = done[:-1], done[-1]
    connected = sum(r["connected"] for r in ready[:-1])
    latencies = latencies_of(viewers_done, "latencies")
    acks = latencies_of(viewers_done, "reaction_acks")
    delivered = sum(d["delivered"] for d in viewers_done)
    viewer_seconds = sum(d["viewers"] for d in viewers_done) * args.duration
    return RunResult(
        run="with interactions" if interact else "chat only",
        viewers=len(room.viewer_tokens),
        connected=connected,
        reactions_sent=sum(d["reactions"]["sent"] for d in viewers_done),
        reactions_accepted=sum(d["reactions"]["ok"] for d in viewers_done),
        votes_sent=sum(d["votes"]["sent"] for d in viewers_done),
        votes_accepted=sum(d["votes"]["ok"] for d in viewers_done),
        votes_counted=sum(counted),
        events_mean_per_s=round(sum(d["events"] for d in viewers_done) / viewer_seconds, 2)
        if viewer_seconds
        else 0.0,
        events_max_per_s=max(d["max_per_s"] for d in viewers_done),
        chat_sent=sender_done["sent"],
        chat_delivered_pct=round(100 * delivered / (sender_done["sent"] * connected), 2)
        if connected and sender_done["sent"]
        else 0.0,
        chat_p50_ms=round(percentile(latencies, 0.50), 1),
        chat_p99_ms=round(percentile(latencies, 0.99), 1),
        reaction_ack_p50_ms=round(percentile(acks, 0.50), 1),
        reaction_ack_p99_ms=round(percentile(acks, 0.99), 1),
        server_cpu_pct=round(100 * server_cpu, 1),
        duration=args.duration,
        errors=[e for r in ready for e in r["errors"]]
        + [e for d in viewers_done for e in d["reactions"]["errors"] + d["votes"]["errors"]]
        + sender_done["errors"],
    )


def table(results: list[RunResult]) -> str:
    head = (
        f"{'run':<18} {'viewers':>8} {'reactions/s sent/ok':>20} {'votes sent/ok/counted':>22}"
        f" {'events/s/viewer':>16} {'chat p50':>9} {'chat p99':>9} {'ack p50':>9}"
        f" {'ack p99':>9} {'server CPU':>11}"
    )
    lines = [head, "-" * len(head)]
    for r in results:
        lines.append(
            f"{r.run:<18} {r.connected:>5}/{r.viewers:<3}"
            f" {r.reactions_sent / r.duration:>9.0f}/{r.reactions_accepted / r.duration:<10.0f}"
            f" {r.votes_sent:>7}/{r.votes_accepted}/{r.votes_counted:<8}"
            f" {r.events_mean_per_s:>7.2f} (max {r.events_max_per_s:>2})"
            f" {r.chat_p50_ms:>7.1f}ms {r.chat_p99_ms:>7.1f}ms"
            f" {r.reaction_ack_p50_ms:>7.1f}ms {r.reaction_ack_p99_ms:>7.1f}ms"
            f" {r.server_cpu_pct:>9.1f}%"
        )
    return "\n".join(lines)


def goals(results: list[RunResult]) -> dict[str, Any]:
    loaded = next((r for r in results if r.run == "with interactions"), None)
    if loaded is None:
        return {}
    return {
        "chat_p99_under_250ms": loaded.chat_p99_ms < GOAL_P99_MS,
        "every_vote_counted": loaded.votes_counted == loaded.votes_accepted,
        "at_most_10_events_per_s": loaded.events_max_per_s <= GOAL_EVENTS_PER_S,
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--viewers", type=int, default=5000)
    parser.add_argument("--senders", type=int, default=3)
    parser.add_argument("--rate", type=float, default=10.0)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--vote-window", type=float, default=10.0)
    parser.add_argument("--grace", type=float, default=5.0)
    parser.add_argument("--procs", type=int, default=4)
    parser.add_argument("--batch", type=int, default=200)
    parser.add_argument("--connect-timeout", type=float, default=60.0)
    parser.add_argument("--ramp-timeout", type=float, default=300.0)
    parser.add_argument("--only", choices=["with", "without"])
    parser.add_argument(
        "--database-url",
        help="a PostgreSQL server (postgresql+asyncpg://...): the run gets a fresh database on it",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    results: list[RunResult] = []
    print(f"machine: {kit.machine()}", file=sys.stderr, flush=True)
    with stagecast_room(args) as (room, pid):
        for interact, skipped_by in ((False, "with"), (True, "without")):
            if args.only != skipped_by:
                results.append(run(room, pid, interact, args))
                # Each row as soon as it is known: a later failure must not lose it.
                print(table(results[-1:]), file=sys.stderr, flush=True)
    print(table(results))
    verdict = goals(results)
    for name, met in verdict.items():
        print(f"goal {name}: {'met' if met else 'NOT met'}")
    for result in results:
        if result.errors:
            print(f"{result.run} errors: {result.errors[:5]}")
    kit.write_json(
        "interactions",
        {
            "benchmark": "interactions",
            "machine": kit.machine(),
            "settings": vars(args),
            "results": [asdict(r) for r in results],
            "goal": verdict,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
