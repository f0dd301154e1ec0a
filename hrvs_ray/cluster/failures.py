"""Why a cell did not finish, as a type rather than a string prefix. Pure: no ray.

The stored ``error`` text starts with the kind's words ("process died: …"), so a person
reading ``cells.parquet`` sees the same cause the driver acted on.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class FailureKind(Enum):
    PROCESS_DIED = "process died"        # the cell's process vanished (SIGKILL, crash)
    OUT_OF_MEMORY = "out of memory"      # Ray's memory monitor killed it
    NODE_LOST = "node lost"              # its node left the cluster
    TIMEOUT = "timeout"                  # ran over cell_timeout_s, or never started
    CELL_ERROR = "error"                 # the cell raised (bad image, bug): its own failure
    DRIVER_ERROR = "driver error"        # anything else the driver caught

    @property
    def retryable(self) -> bool:
        """Worth another node: the process or its node died, not the cell's own logic."""
        return self in (FailureKind.PROCESS_DIED, FailureKind.OUT_OF_MEMORY, FailureKind.NODE_LOST,
                        FailureKind.TIMEOUT, FailureKind.DRIVER_ERROR)


@dataclass(frozen=True)
class Failure:
    kind: FailureKind
    detail: str

    def __str__(self) -> str:
        return f"{self.kind.value}: {self.detail}"

    def with_note(self, note: str) -> Failure:
        return Failure(self.kind, f"{self.detail} {note}")

    def on_lost_node(self, node: str) -> Failure:
        """The process failed because its node left: that is the cause to report."""
        return Failure(FailureKind.NODE_LOST, f"{node} left the cluster mid-cell ({self})")


def shorten(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
