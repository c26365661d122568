"""Waking a user's open sockets through the channel layer.

The push is best effort by design: channels-redis drops messages for a channel over capacity or
older than its expiry, and Redis may be restarting. Nothing is lost by that, because the row was
committed first and every socket fills gaps from the database (see ``NotificationConsumer``).

Sync code (the Celery workers) sends through one event loop per process that runs for the life
of the process in a daemon thread. ``async_to_sync(group_send)`` would start a new loop, and a new
Redis connection pool, for every message, which caps a worker at a few hundred pushes a second.
"""

import asyncio
import logging
import os
import threading
import weakref
from collections.abc import Sequence
from concurrent.futures import Future

from channels import DEFAULT_CHANNEL_LAYER
from channels.layers import BaseChannelLayer, channel_layers
from django.conf import settings

logger = logging.getLogger(__name__)

# How much longer than the sends' own timeout the caller waits for the loop to answer at all
# (a loop that is wedged); each send is cut off on the loop at ``timeout`` itself.
_LOOP_GRACE_SECONDS = 1.0


class GroupSender:
    """Sends channel-layer group messages from sync code through one long-lived event loop.

    The loop and its channel layer are made on first use. The layer is an instance of its own,
    not the process's shared ``get_channel_layer()``: channels-redis ties a layer's receive state
    to one loop and keeps its per-loop connection pools in a plain dict, not made for several
    threads at once. With the in-memory layer (tests) the instance is private too, so its
    messages reach no socket.
    """

    def __init__(self, alias: str = DEFAULT_CHANNEL_LAYER) -> None:
        self.alias = alias
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._layer: BaseChannelLayer | None = None
        _senders.add(self)

    @property
    def thread(self) -> threading.Thread | None:
        """The thread running the loop, None before the first send (and after ``close``)."""
        return self._thread

    def send(self, group: str, message: dict, timeout: float) -> None:
        """Send one message to ``group``; raises what the layer raised, or TimeoutError."""
        [error] = self.send_many([(group, message)], timeout)
        if error is not None:
            raise error

    def send_many(
        self, messages: Sequence[tuple[str, dict]], timeout: float
    ) -> list[BaseException | None]:
        """Send every ``(group, message)`` at once; per item, None if the layer took it, else
        the exception (TimeoutError after ``timeout``). With the Redis layer they go together, in a
        few round trips (``group_send_many``), and fail together; with another layer each goes on
        its own, and one slow group does not hold up the rest.
        """
        _refuse_inside_event_loop()
        if not messages:
            return []
        loop, layer = self._started()
        future: Future = asyncio.run_coroutine_threadsafe(_send_all(layer, messages, timeout), loop)
        try:
            return future.result(timeout + _LOOP_GRACE_SECONDS)
        except TimeoutError as error:  # the loop did not answer: nothing is known to be sent
            future.cancel()
            return [error] * len(messages)

    def close(self) -> None:
        """Stop the loop and its thread; the next send starts new ones. For tests."""
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = self._layer = None
        if loop is None or thread is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()  # channels-redis closes the loop's connection pool as part of this

    def forget_parent_loop(self) -> None:
        """Drop the loop of the parent process after ``fork``.

        Only the forking thread survives a fork, so the copied loop has no thread to run it;
        the child starts its own on its first send. The lock is new too: the parent may have
        held it while forking.
        """
        self._lock = threading.Lock()
        self._loop = self._thread = self._layer = None

    def _started(self) -> tuple[asyncio.AbstractEventLoop, BaseChannelLayer]:
        with self._lock:
            if self._loop is None:
                layer = channel_layers.make_backend(self.alias)  # first: it may raise
                loop = asyncio.new_event_loop()
                thread = threading.Thread(
                    target=loop.run_forever, name="channel-layer-sender", daemon=True
                )
                thread.start()
                self._loop, self._thread, self._layer = loop, thread, layer
            return self._loop, self._layer


async def _send_all(
    layer: BaseChannelLayer, messages: Sequence[tuple[str, dict]], timeout: float
) -> list[BaseException | None]:
    if hasattr(layer, "group_send_many"):  # the Redis layer: all of them in a few round trips
        try:
            async with asyncio.timeout(timeout):
                await layer.group_send_many(messages)
        except Exception as error:
            return [error] * len(messages)
        return [None] * len(messages)

    async def send_one(group: str, message: dict) -> None:
        async with asyncio.timeout(timeout):
            await layer.group_send(group, message)

    results = await asyncio.gather(
        *(send_one(group, message) for group, message in messages), return_exceptions=True
    )
    # A cancelled send comes back as CancelledError, a BaseException: not sent either.
    return [result if isinstance(result, BaseException) else None for result in results]


def _refuse_inside_event_loop() -> None:
    # Blocking on the sender's loop from a thread that runs a loop itself would stall that loop
    # for up to the timeout, or for good if it is the sender's own thread.
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return
    raise RuntimeError(
        "GroupSender is for sync code; in async code await channel_layer.group_send directly"
    )


# Every sender of the process, so that a forked child (Celery's prefork pool forks after
# importing this module) forgets their loops.
_senders: "weakref.WeakSet[GroupSender]" = weakref.WeakSet()


def _forget_parent_loops() -> None:
    for sender in list(_senders):
        sender.forget_parent_loop()


os.register_at_fork(after_in_child=_forget_parent_loops)

group_sender = GroupSender()


def user_group(user_id: int) -> str:
    return f"Notifications_{user_id}"


def _notification_message(notification: dict) -> dict:
    return {"type": "notification.message", "notification": notification}


def push_to_user(user_id: int, notification: dict) -> bool:
    """Send one notification payload to every socket of the user; False if it could not."""
    [pushed] = push_to_users([(user_id, notification)])
    return pushed


def push_to_users(items: list[tuple[int, dict]]) -> list[bool]:
    """Send each ``(user_id, notification)`` at once; per item, False if it could not."""
    messages = [(user_group(user_id), _notification_message(n)) for user_id, n in items]
    try:
        errors = group_sender.send_many(messages, settings.NOTIFICATION_PUSH_TIMEOUT_SECONDS)
    except Exception as error:  # e.g. a layer that cannot even be made: every push failed
        errors = [error] * len(items)
    for (user_id, notification), error in zip(items, errors, strict=True):
        if error is not None:  # a broken channel layer must not undo or retry a stored one
            logger.warning(
                "push of notification %s to user %s failed",
                notification["id"],
                user_id,
                exc_info=error,
            )
    return [error is None for error in errors]
