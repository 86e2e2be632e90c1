"""The one way the engines run a command to completion: ``run_command``.

An argument list, never a shell string; stdin is /dev/null; the wait is bounded by
``timeout``; stdout is bounded by ``max_output``; and a failure raises an error whose message
names the command and quotes its own words (its stderr), e.g. ``ip -n ns1 link show x exited
1: Device "x" does not exist.``. No Django.

Daemons that keep running (HAProxy, stunnel, keepalived) are started by their controllers in
``lbadmin.engines.daemons``, not here: this is for commands that finish (``ip``, ``sysctl``,
``haproxy -c``, ``keepalived -t``).
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

# Cut a command's stderr to this many characters in an error message.
MAX_WORDS = 2000


class CommandError(RuntimeError):
    """A command could not run, did not finish in time, exited non-zero or printed too much.

    The message quotes the command's own words. Raised as ``raise … from`` the underlying
    ``subprocess.TimeoutExpired`` or ``OSError`` where there is one, so a caller that words
    these cases its own way can tell them apart by ``__cause__``."""


@dataclass(frozen=True)
class Finished:
    """A command that ran to its end (with ``check=False``, whatever its exit status)."""

    returncode: int
    stdout: bytes
    stderr: bytes

    @property
    def text(self) -> str:
        """stdout as text (undecodable bytes replaced)."""
        return self.stdout.decode(errors="replace")

    @property
    def output(self) -> str:
        """stdout then stderr, as text: what a config check printed, warnings included."""
        return (self.stdout + self.stderr).decode(errors="replace")


def run_command(
    argv: Sequence[str],
    *,
    timeout: float,
    shown: str | None = None,
    max_output: int | None = None,
    env: Mapping[str, str] | None = None,
    check: bool = True,
    error: Callable[[str], Exception] = CommandError,
    no_words: str = "",
) -> Finished:
    """Run ``argv`` to its end and return what it printed.

    Raises ``error(message)`` (CommandError unless the caller names its own class, such as
    NetinfoError) when the command cannot run, does not finish within ``timeout`` seconds
    (it is killed), exits non-zero (only with ``check``) or printed more than ``max_output``
    bytes on stdout (None: no limit; checked once it has ended). ``shown`` is how the message
    names the command (default: ``argv`` joined by spaces; ``ip`` callers leave out the
    binary's path); ``no_words`` stands after "exited N:" when the command wrote nothing to
    stderr. ``env`` replaces the environment (None: inherit ours).
    """
    name = shown if shown is not None else " ".join(argv)
    try:
        result = subprocess.run(
            list(argv),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
            check=False,
            env=None if env is None else dict(env),
        )
    except subprocess.TimeoutExpired as exc:
        raise error(f"{name} did not finish within {timeout:g} s") from exc
    except OSError as exc:
        raise error(f"{name} could not run: {exc}") from exc
    if check and result.returncode != 0:
        words = result.stderr.decode(errors="replace").strip()[:MAX_WORDS]
        raise error(f"{name} exited {result.returncode}: {words or no_words}")
    if max_output is not None and len(result.stdout) > max_output:
        raise error(f"{name} printed more than {max_output} bytes")
    return Finished(result.returncode, result.stdout, result.stderr)
