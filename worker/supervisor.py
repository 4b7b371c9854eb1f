"""Keep one worker child alive: fork it from the warm parent, restart it when a job kills it.

The child runs jobs in its own process (no fork per job), so a job costs what the
pipeline costs. What a fork per job would buy is kept here instead: a child that dies
mid-job (killed, out of memory, crashed in C) is replaced at once and its job is failed
or retried with a reason, and a job stuck past its timeout, or canceled in the middle of a
long step, is killed from outside.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import time
from collections.abc import Callable
from types import FrameType

log = logging.getLogger(__name__)
POLL_SECONDS = 0.5
PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


class Supervisor:
    """Fork `run_child` in a fresh process group and watch it until told to stop."""

    def __init__(
        self,
        run_child: Callable[[], None],
        on_death: Callable[[int, str], None],
        check: Callable[[int], str | None],
    ) -> None:
        self.run_child = run_child  # runs the worker in the child, returns when it stops
        self.on_death = on_death  # (child pid, why) after a child died abnormally
        self.check = check  # (child pid) -> why to kill it now (its job is stuck or canceled), else None
        self.stopping = False
        self.child = 0

    def run(self) -> int:
        """Start children until a stop is requested; return the exit status."""
        signal.signal(signal.SIGTERM, self._forward)
        signal.signal(signal.SIGINT, self._forward)
        while not self.stopping:
            self.child = self._fork()
            if self.stopping:  # the request came while we were forking
                self._stop_child()
            why = self._watch(self.child)
            if why is None or (self.stopping and why == f"killed by signal {signal.SIGTERM}"):
                continue  # stopped as asked, or recycled after its job quota
            log.warning("worker child %d died (%s); starting another", self.child, why)
            self.on_death(self.child, why)
            if self.stopping:
                return 1
        return 0

    def _fork(self) -> int:
        """Start a child in its own process group, so its own children go with it."""
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:
            os.setpgrp()
            _die_with(parent)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches us; we forward SIGTERM
            status = 0
            try:
                self.run_child()
            except SystemExit as exc:  # e.g. RQ's warm shutdown on SIGTERM
                status = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
            except BaseException:  # noqa: BLE001 - logged; the supervisor sees the exit status and says so
                log.exception("worker child %d failed", os.getpid())
                status = 1
            finally:
                os._exit(status)
        return pid

    def _watch(self, pid: int) -> str | None:
        """Wait for the child to end; return why it died, or None when it exited cleanly."""
        while True:
            try:
                done, status = os.waitpid(-1, os.WNOHANG)  # also reaps orphans (we may be PID 1)
            except ChildProcessError:
                return "lost"
            if done == pid:
                self._kill_group(pid)
                if os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0:
                    return None
                if os.WIFSIGNALED(status):
                    return f"killed by signal {os.WTERMSIG(status)}"
                return f"exited with status {os.WEXITSTATUS(status)}"
            if done:
                continue
            why = self.check(pid)
            if why:
                log.warning("killing worker child %d: %s", pid, why)
                self._kill_group(pid)
                os.waitpid(pid, 0)
                return why
            time.sleep(POLL_SECONDS)

    def _forward(self, signum: int, frame: FrameType | None) -> None:
        """Pass a stop request on to the child: the first finishes the current job, a second one cuts it short."""
        self.stopping = True
        self._stop_child()

    def _stop_child(self) -> None:
        """Ask the current child to stop."""
        if self.child:
            try:
                os.kill(self.child, signal.SIGTERM)
            except ProcessLookupError:
                pass

    @staticmethod
    def _kill_group(pid: int) -> None:
        """Kill the child and whatever is left of its process group."""
        for kill in (os.kill, os.killpg):
            try:
                kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


def _die_with(parent: int) -> None:
    """Have the kernel kill this child when its supervisor dies, so no orphan runs a job nobody watches."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # it died before the request took effect
        os._exit(1)
