"""Reading ``/sys`` and ``/proc`` files (live or a recorded snapshot), and the kernel's CPU list formats.

Pure: standard library only. Every read strips whitespace *and* NUL bytes at both ends: some
kernels and firmware tables end their ``*_list`` files in ``"\\n\\0"`` (seen on a 128-core Kunpeng
920), which ``int()`` rejects. A file that exists but cannot be read or parsed raises
:class:`TopologyError` -- "cannot read topology: FILE: problem" -- never a bare ``ValueError``.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ..errors import UserError

_JUNK = " \t\r\n\v\f\x00"


class TopologyError(UserError, RuntimeError):
    """The topology cannot be read; the message names the file and the problem."""

    def __init__(self, path: str | Path, problem: str) -> None:
        super().__init__(f"cannot read topology: {path}: {problem}")
        self.path = str(path)
        self.problem = problem


def clean(text: str) -> str:
    """The text without surrounding whitespace and NUL padding."""
    return text.strip(_JUNK)


def read_text(path: Path, required: bool = False) -> str | None:
    """The cleaned text of ``path``; None when it does not exist (unless ``required``).

    A file that exists but is unreadable (permissions, I/O error, not text) is an error, not
    an absence: silently treating it as missing would change the answer without saying so.
    """
    try:
        return clean(path.read_bytes().decode("utf-8"))
    except (FileNotFoundError, NotADirectoryError):
        if required:
            raise TopologyError(path, "missing") from None
        return None
    except IsADirectoryError:
        raise TopologyError(path, "is a directory, expected a file") from None
    except UnicodeDecodeError:
        raise TopologyError(path, "not text") from None
    except OSError as e:
        raise TopologyError(path, e.strerror or str(e)) from None


def read_optional(path: Path) -> str | None:
    """For extras that only refine the answer (cache sizes, clocks, capacities): any failure is
    an absence, so a VM that hides them still gets a topology."""
    try:
        return read_text(path)
    except TopologyError:
        return None


def parse_cpulist(text: str) -> tuple[int, ...]:
    """``"0-3,8,10-11"`` -> (0, 1, 2, 3, 8, 10, 11); empty text -> (). Raises ValueError."""
    out: set[int] = set()
    for part in clean(text).split(","):
        part = clean(part)
        if not part:
            continue
        if "-" in part:
            lo, hi = part.split("-", 1)
            a, b = int(lo), int(hi)
            if a < 0 or b < a:
                raise ValueError(f"bad range {part!r}")
            out.update(range(a, b + 1))
        else:
            if int(part) < 0:
                raise ValueError(f"negative CPU {part!r}")
            out.add(int(part))
    return tuple(sorted(out))


def parse_cpumask(text: str) -> tuple[int, ...]:
    """Hex mask ``"00000000,00001001"`` (32-bit words, most significant first) -> CPU ids."""
    bits = int(clean(text).replace(",", "") or "0", 16)
    return tuple(i for i in range(bits.bit_length()) if bits >> i & 1)


def format_cpulist(cpus: tuple[int, ...] | list[int] | set[int] | frozenset[int]) -> str:
    """0,1,2,3,8 -> '0-3,8' (the kernel's cpulist format)."""
    out, run = [], []
    for c in sorted(cpus):
        if run and c == run[-1] + 1:
            run.append(c)
            continue
        if run:
            out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
        run = [c]
    if run:
        out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
    return ",".join(out)


def _parsed(path: Path, parse: Callable[[str], tuple[int, ...]], what: str,
            required: bool = False) -> tuple[int, ...] | None:
    text = read_text(path, required)
    if text is None:
        return None
    try:
        return parse(text)
    except ValueError:
        raise TopologyError(path, f"not a {what}: {text[:60]!r}") from None


def cpulist_at(path: Path, required: bool = False) -> tuple[int, ...] | None:
    """A cpulist file, parsed; None when absent."""
    return _parsed(path, parse_cpulist, "CPU list", required)


def cpumask_at(path: Path) -> tuple[int, ...] | None:
    """A hex cpumask file, parsed; None when absent."""
    return _parsed(path, parse_cpumask, "CPU mask")


def int_at(path: Path) -> int | None:
    """An integer file (decimal, or hex with 0x); None when absent."""
    text = read_text(path)
    if text is None or text == "":
        return None
    try:
        return int(text, 16) if text.lower().startswith("0x") else int(text)
    except ValueError:
        raise TopologyError(path, f"not an integer: {text[:60]!r}") from None


def optional_int(path: Path) -> int | None:
    """:func:`int_at` for extras: unreadable or malformed counts as absent."""
    try:
        return int_at(path)
    except TopologyError:
        return None


def numbered_dirs(parent: Path, prefix: str) -> dict[int, Path]:
    """``parent/<prefix><N>`` directories by N (``cpu0``, ``node3``); {} when ``parent`` is absent."""
    out: dict[int, Path] = {}
    try:
        entries = list(parent.iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return out
    except OSError as e:
        raise TopologyError(parent, e.strerror or str(e)) from None
    for p in entries:
        tail = p.name[len(prefix):]
        if p.name.startswith(prefix) and tail.isdigit() and p.is_dir():
            out[int(tail)] = p
    return dict(sorted(out.items()))
