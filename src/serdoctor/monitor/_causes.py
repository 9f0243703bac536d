"""Why a task failed, in a few words, and what to do about it.

The executor records each failed try's exception class and message; this
module groups them into causes and attaches the remedy the stack knows, so
``ser-doctor tasks --failed`` can say "12 tasks: defined in __main__ on a pool
with Python 3.12: by-value code refused" instead of listing twelve tracebacks.
"""

from __future__ import annotations

import re

_REMEDIES: dict[str, str] = {
    "IncompatiblePythonError": (
        "by-value code (a __main__ function, lambda or closure) runs only on the Python "
        "major.minor that made it: run the pools on the client's Python, or make the function "
        "importable (a module installed on the pools) so it travels by reference"
    ),
    "MissingModuleError": (
        "the pool cannot import a module the task needs: install it where the pools run "
        '(worker_init="source venv/bin/activate"), or send its code with by_value_modules'
    ),
    "SerializationError": (
        "an argument or result cannot be sent: `ser-doctor check` names the sub-object and a remedy"
    ),
    "DeserializationError": (
        "the bytes could not be loaded where they arrived: `ser-doctor inspect` reads them "
        "without executing anything"
    ),
    "SignatureError": (
        "a message was not signed with the executor's key: check the pool's --key-file"
    ),
    "WorkerLost": (
        "the worker process died (crash, kill, out of memory): see the exit code or signal; "
        "retries=N re-runs such tasks"
    ),
    "ManagerLost": (
        "a whole pool stopped answering (host down, network, SIGSTOP): its tasks were lost; "
        "retries=N re-runs them on another pool"
    ),
    "TaskTimeout": "the task ran longer than its walltime: raise walltime= or split the task",
    "DependencyError": (
        "a task this one depends on failed: fix that task first (the chain is named)"
    ),
    "BlockError": "the batch system refused or lost a block: see executor.blocks() for its words",
}


def short_type(exc_type: str) -> str:
    """``serdoctor.errors.WorkerLost`` -> ``WorkerLost``."""
    return exc_type.rsplit(".", 1)[-1]


def remedy_for(exc_type: str) -> str:
    """The remedy the stack knows for this exception class, or ``""`` for the user's own errors."""
    return _REMEDIES.get(short_type(exc_type), "")


# Integers and addresses vary between tasks of one cause; versions (3.11, 2.1.0) do not.
_NUMBERS = re.compile(r"\b0x[0-9a-f]+\b|(?<![\d.])\d+(?![\d.])", re.IGNORECASE)
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")


def cause_key(exc_type: str, message: str) -> str:
    """A grouping key: the class plus the message with numbers and quoted values blanked.

    ``ValueError: bad value 3`` and ``ValueError: bad value 7`` are one cause;
    versions such as ``3.11`` are kept, they are often the cause.
    """
    text = _QUOTED.sub("'…'", message.splitlines()[0] if message else "")
    return f"{short_type(exc_type)}: {_NUMBERS.sub('N', text)[:200]}"
