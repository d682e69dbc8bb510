"""Everything that touches Flower's internals, in one place (pinned: flwr 1.42.*).

Flower is the engine: its strategies (FedAvg, FedProx, ...) drive rounds through a `Grid`,
and its `ClientApp` answers `Message`s. oncofed is the network: `OncofedGrid` hands each
round's messages to a *transport* (at the hub: signed `fl.round` tasks to the nodes) instead
of a SuperLink, and `call_client_app` runs the node's ClientApp on one delivered message.

Outside Flower's own runtime, building a `Message` fails with "TaskIdentity.run_id is not
set": Flower's runtime sets the process's task identity before it runs an app. `use_run`
does the same here. The 2-round contract test (`tests/test_contract.py`) pins this
behaviour, so a Flower upgrade that changes it fails in CI rather than in a hospital.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from flwr.app import ArrayRecord, ConfigRecord, Context, Error, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid
from flwr.supercore.run import Run
from flwr.supercore.task_identity import TaskIdentity

# Flower's SuperLink is node 0 by convention; sites are numbered from 1 in run order.
SERVER_NODE_ID = 0
ERROR_REFUSED = 403
ERROR_FAILED = 500


def use_run(run_id: int, node_id: int) -> None:
    """Set this process's Flower task identity (what Flower's runtime does for an app)."""
    TaskIdentity.run_id = run_id
    TaskIdentity.node_id = node_id
    TaskIdentity.task_id = 1


def plain(record: ConfigRecord | MetricRecord) -> dict[str, Any]:
    """A Config/MetricRecord as JSON-able values."""
    return {str(k): v for k, v in record.items()}


@dataclass
class Reply:
    """A node's answer to one round message, as it travels over oncofed's channel."""

    arrays: ArrayRecord | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    refused: bool = False


# The transport: (message type, round/group, global arrays or None, config, node ids,
# timeout) -> a reply per node id that answered in time.
Transport = Callable[
    [str, str, ArrayRecord | None, dict[str, Any], list[int], float | None], dict[int, Reply]
]


class RoundFailed(RuntimeError):
    """Too few sites answered a round (below the run's minimum)."""


class OncofedGrid(Grid):
    """A Flower Grid over oncofed's task channel.

    One round's messages go out as one transport call per (type, content): FedAvg sends the
    same arrays and config to every site, so each round is one signed task addressed to all
    of them. Replies that do not come back by the timeout are missing (the straggler does not
    stall the run); fewer than `min_sites` valid training replies fails the round.
    """

    def __init__(
        self,
        node_ids: list[int],
        transport: Transport,
        min_sites: int,
        run_id: int,
        names: dict[int, str] | None = None,
    ):
        self._nodes = list(node_ids)
        self._names = names or {}
        self._transport = transport
        self.min_sites = min_sites
        self._run = Run.create_empty(run_id)
        use_run(run_id, SERVER_NODE_ID)
        self._pending: dict[str, Message] = {}
        self._replies: dict[str, Message] = {}
        self._counter = 0
        self.bytes_sent = 0

    def set_run(self, run: Run) -> None:
        self._run = run

    @property
    def run(self) -> Run:
        return self._run

    def create_message(
        self,
        content: RecordDict,
        message_type: str,
        dst_node_id: int,
        group_id: str,
        ttl: float | None = None,
    ) -> Message:
        return Message(content, dst_node_id, message_type, ttl=ttl, group_id=group_id)

    def get_node_ids(self) -> Iterable[int]:
        return list(self._nodes)

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        ids = []
        for msg in messages:
            self._counter += 1
            message_id = f"m{self._counter}"
            msg.metadata.__dict__["_message_id"] = message_id
            self._pending[message_id] = msg
            ids.append(message_id)
        return ids

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        return [self._replies.pop(i) for i in list(message_ids) if i in self._replies]

    def send_and_receive(
        self, messages: Iterable[Message], *, timeout: float | None = None
    ) -> Iterable[Message]:
        ids = list(self.push_messages(messages))
        if not ids:
            return []
        groups: dict[str, list[str]] = {}
        for message_id in ids:
            msg = self._pending[message_id]
            key = json.dumps(
                [
                    msg.metadata.message_type,
                    msg.metadata.group_id,
                    _content_key(msg.content),
                ]
            )
            groups.setdefault(key, []).append(message_id)
        for group in groups.values():
            first = self._pending[group[0]]
            arrays = first.content.array_records.get("arrays")
            config = plain(first.content["config"]) if "config" in first.content else {}
            by_node = {self._pending[m].metadata.dst_node_id: m for m in group}
            answers = self._transport(
                first.metadata.message_type,
                first.metadata.group_id,
                arrays,
                config,
                sorted(by_node),
                timeout,
            )
            valid = 0
            problems = []
            for node_id, message_id in by_node.items():
                answer = answers.get(node_id)
                name = self._names.get(node_id, f"node {node_id}")
                if answer is None:
                    problems.append(f"{name}: no answer")
                    continue
                if answer.error is not None:
                    problems.append(f"{name}: {answer.error}")
                instruction = self._pending.pop(message_id)
                self._replies[message_id] = to_message(answer, instruction)
                valid += answer.error is None
            for message_id in group:
                self._pending.pop(message_id, None)
            # Only training needs the minimum of sites: a site that may not report its
            # validation metrics (too few validation patients) leaves the run going.
            if first.metadata.message_type == "train" and valid < self.min_sites:
                # FedAvg leaves the group id empty and puts the round in the config.
                number = config.get("server-round", first.metadata.group_id)
                raise RoundFailed(
                    f"round {number} ({first.metadata.message_type}): {valid} site(s) "
                    f"answered, fewer than the run's minimum of {self.min_sites} ("
                    + "; ".join(problems)
                    + ")"
                )
        return list(self.pull_messages(ids))


def _content_key(content: RecordDict) -> str:
    arrays = content.array_records.get("arrays")
    config = plain(content["config"]) if "config" in content else {}
    return json.dumps([arrays.object_id if arrays is not None else None, config], sort_keys=True)


def to_message(reply: Reply, instruction: Message) -> Message:
    """A node's reply as the Flower Message the strategy expects."""
    if reply.error is not None:
        code = ERROR_REFUSED if reply.refused else ERROR_FAILED
        return Message(Error(code, reply.error), reply_to=instruction)
    content = RecordDict()
    if reply.arrays is not None:
        content["arrays"] = reply.arrays
    content["metrics"] = MetricRecord(reply.metrics)
    return Message(content=content, reply_to=instruction)


def call_client_app(
    app: ClientApp,
    message_type: str,
    arrays: ArrayRecord | None,
    config: dict[str, Any],
    node_config: dict[str, Any],
    *,
    run_id: int = 1,
    node_id: int = 1,
    group_id: str = "",
    refusals: tuple[type[Exception], ...] = (),
) -> Reply:
    """Run the node's ClientApp on one message; exceptions become error replies.

    The message is built as the server side would send it, then the task identity switches
    to the node's for the app, and back afterwards (both sides may share a process in
    tests and the benchmark).
    """
    saved = (TaskIdentity._run_id, TaskIdentity._node_id, TaskIdentity._task_id)
    use_run(run_id, SERVER_NODE_ID)
    content = RecordDict()
    if arrays is not None:
        content["arrays"] = arrays
    content["config"] = ConfigRecord(config)
    message = Message(content, node_id, message_type, group_id=group_id)
    message.metadata.__dict__["_message_id"] = f"{run_id}-{group_id}-{message_type}"
    context = Context(
        run_id=run_id, node_id=node_id, node_config=node_config, state=RecordDict(), run_config={}
    )
    use_run(run_id, node_id)
    try:
        answer = app(message, context)
    except refusals as exc:
        return Reply(error=str(exc), refused=True)
    except Exception as exc:
        return Reply(error=f"{type(exc).__name__}: {exc}")
    finally:
        TaskIdentity._run_id, TaskIdentity._node_id, TaskIdentity._task_id = saved
    if answer.has_error():
        return Reply(error=answer.error.reason or "error")
    metrics: dict[str, Any] = {}
    for record in answer.content.metric_records.values():
        metrics.update(plain(record))
    return Reply(arrays=answer.content.array_records.get("arrays"), metrics=metrics)
