"""Watching a consumer group from outside while one of its members dies.

What a test can see through the admin API alone, on any Kafka-protocol broker: who is in the
group and which partitions each member holds (DescribeGroups), and what the group has committed
(OffsetFetch; Tansu needs the partitions named). A SIGKILLed member sends no LeaveGroup: the
coordinator notices it only when its session times out, then the survivors rejoin and split its
partitions. :func:`watch_takeover` times the two moments that matter to a workflow.

Tansu describes a group's members but not their assignments (empty bytes). Every agentlog
consumer uses aiokafka's default round-robin assignor, which is deterministic: sorted
partitions dealt to sorted member ids. So where the broker does not say, the assignment is
computed as the group's leader computed it (on Apache Kafka the test checks the two agree).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Mapping
from dataclasses import dataclass

from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment

__all__ = ["GroupSnapshot", "Takeover", "round_robin", "snapshot", "watch_takeover"]

_POLL_S = 0.1


@dataclass(frozen=True)
class GroupSnapshot:
    """A group's members with their partitions, and its committed offsets, at one moment."""

    state: str
    members: dict[str, frozenset[TopicPartition]]
    committed: dict[TopicPartition, int]
    #: True when the broker did not describe the assignment and :func:`round_robin` filled it.
    inferred: bool

    @property
    def partitions(self) -> frozenset[TopicPartition]:
        """Every partition some member holds."""
        return frozenset().union(*self.members.values())


@dataclass(frozen=True)
class Takeover:
    """How a group got over losing one member (seconds from the kill; None: never seen)."""

    group: str
    dead_member: str | None
    #: The dead member's partitions, as it held them before the kill.
    moved: frozenset[TopicPartition]
    #: Until the group was stable again without the dead member, every partition held.
    reassigned_s: float | None
    #: Until the group first committed past the kill-time offset on one of ``moved``: a
    #: survivor has consumed a record from a partition the dead member owned.
    first_commit_s: float | None
    #: The moved partitions that took a commit within the watch (the others saw no record).
    committed_moved: frozenset[TopicPartition]


def round_robin(
    member_ids: list[str], topics: Mapping[str, int]
) -> dict[str, frozenset[TopicPartition]]:
    """What aiokafka's ``RoundRobinPartitionAssignor`` gives members that all subscribe to
    ``topics`` (name → partition count)."""
    held: dict[str, set[TopicPartition]] = {member: set() for member in member_ids}
    every = sorted(TopicPartition(t, p) for t, count in topics.items() for p in range(count))
    for tp, member in zip(every, itertools.cycle(sorted(member_ids)), strict=False):
        held[member].add(tp)
    return {member: frozenset(tps) for member, tps in held.items()}


async def snapshot(
    admin: AIOKafkaAdminClient, group: str, topics: Mapping[str, int]
) -> GroupSnapshot:
    """The group now: members and their partitions of ``topics`` (name → partition count; the
    group's subscription), with its committed offsets."""
    [response] = await admin.describe_consumer_groups([group])
    [described] = response.groups
    error_code, _, state, _, _, raw_members = described[:6]
    if error_code != 0:
        raise RuntimeError(f"describing {group}: error {error_code}")
    members: dict[str, frozenset[TopicPartition]] = {}
    for member in raw_members:
        member_id, assignment = member[0], member[-1]
        held = (
            ConsumerProtocolMemberAssignment.decode(assignment).partitions() if assignment else []
        )
        members[member_id] = frozenset(held)
    inferred = bool(members) and not any(members.values())
    if inferred and state == "Stable":
        members = round_robin(list(members), topics)
    every = sorted(TopicPartition(t, p) for t, count in topics.items() for p in range(count))
    # partitions= is required on Tansu: without it the request breaks the connection.
    offsets = await admin.list_consumer_group_offsets(group, partitions=every)
    committed = {tp: meta.offset for tp, meta in offsets.items()}
    return GroupSnapshot(state, members, committed, inferred)


async def watch_takeover(
    admin: AIOKafkaAdminClient,
    group: str,
    topics: Mapping[str, int],
    before: GroupSnapshot,
    killed_at: float,
    *,
    timeout_s: float = 90.0,
    enough: asyncio.Event | None = None,
) -> Takeover:
    """Watch ``group`` after one of the members in ``before`` was killed at ``killed_at``
    (``time.monotonic()``) until its partitions have moved and taken a commit each, or
    ``timeout_s`` passes, or (once they moved) ``enough`` is set: a partition that gets no
    more records never takes another commit."""
    dead: str | None = None
    moved: frozenset[TopicPartition] = frozenset()
    reassigned_s: float | None = None
    first_commit_s: float | None = None
    committed_moved: set[TopicPartition] = set()
    deadline = killed_at + timeout_s
    while time.monotonic() < deadline:
        now = await snapshot(admin, group, topics)
        elapsed = time.monotonic() - killed_at
        if reassigned_s is None:
            gone = set(before.members) - set(now.members)
            if (
                len(gone) == 1
                and now.state == "Stable"
                and now.members
                and now.partitions >= before.partitions
            ):
                [dead] = gone
                moved = before.members[dead]
                reassigned_s = elapsed
        if reassigned_s is not None:
            for tp in moved:
                if now.committed.get(tp, -1) > before.committed.get(tp, -1):
                    committed_moved.add(tp)
            if committed_moved and first_commit_s is None:
                first_commit_s = elapsed
            if committed_moved == moved or (enough is not None and enough.is_set()):
                break
        await asyncio.sleep(_POLL_S)
    return Takeover(group, dead, moved, reassigned_s, first_commit_s, frozenset(committed_moved))
