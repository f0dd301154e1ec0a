"""Reading a sweep file's YAML safely: no duplicate keys, no runaway size.

Pure: imports neither torch nor ray. PyYAML alone would keep the last of two equal keys
silently (an input set defined twice ran the second definition), and expands aliases at
every use, so a 1 KB "billion laughs" file describes an object that no message, hash or
JSON dump can ever finish printing. The composed node graph is checked before any Python
object is built: every mapping for duplicate keys (both lines named), and the size the
document has once every alias is expanded (refused above ``MAX_NODES``, recursive
aliases refused outright). The check visits each node once, so it costs what parsing does.
"""
from __future__ import annotations

from typing import Any

import yaml

from .check import SweepError, join, preview

MAX_FILE_BYTES = 1 << 20      # a sweep file is a few KB
MAX_NODES = 100_000           # after alias expansion; full.yaml has about 100
MAX_DEPTH = 64                # full.yaml nests 4 deep
_MERGE = "tag:yaml.org,2002:merge"


def load_yaml(text: str, source: str) -> Any:
    """The document in ``text`` as Python data (None if empty); SweepError on any problem."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_FILE_BYTES:
        raise SweepError(source, "", f"file is larger than {MAX_FILE_BYTES // 1024} KiB; "
                                     f"a sweep file is a few KB of YAML")
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _Walk(source).size(node, "", 0)
        return loader.construct_document(node)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(e, "problem", None) or str(e)
        raise SweepError(source, "", f"not valid YAML: {where}{preview(problem, 200)}") from None
    except RecursionError:
        raise SweepError(source, "", f"not valid YAML: nested more than {MAX_DEPTH} levels deep") from None
    finally:
        loader.dispose()


class _Walk:
    """One pass over the node graph: duplicate keys, depth, expanded size."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.sizes: dict[int, int] = {}     # id(node) -> expanded size (aliases share nodes)
        self.open: set[int] = set()         # nodes on the current path: seeing one again is a cycle

    def fail(self, key: str, problem: str) -> None:
        raise SweepError(self.source, key, problem)

    def size(self, node: yaml.Node, path: str, depth: int) -> int:
        nid = id(node)
        if nid in self.sizes:
            return self.sizes[nid]
        if nid in self.open:
            self.fail(path, f"a YAML alias refers to its own anchor (line {node.start_mark.line + 1}): "
                            f"the value would be infinite")
        if depth > MAX_DEPTH:
            self.fail(path, f"nested more than {MAX_DEPTH} levels deep")
        self.open.add(nid)
        total = 1
        if isinstance(node, yaml.MappingNode):
            self._duplicates(node, path)
            for k, v in node.value:
                total += self.size(k, path, depth + 1) + self.size(v, _child(path, k), depth + 1)
        elif isinstance(node, yaml.SequenceNode):
            for i, v in enumerate(node.value):
                total += self.size(v, f"{path}[{i}]", depth + 1)
        self.open.discard(nid)
        if total > MAX_NODES:
            self.fail(path, f"expands to more than {MAX_NODES:,} YAML values (aliases counted at every "
                            f"use); a sweep file needs a few hundred")
        self.sizes[nid] = total
        return total

    def _duplicates(self, node: yaml.MappingNode, path: str) -> None:
        seen: dict[tuple[str, str], int] = {}
        for k, _ in node.value:
            if not isinstance(k, yaml.ScalarNode) or k.tag == _MERGE:
                continue  # merged keys ("<<: *base") may be overridden: that is what merging is for
            line = k.start_mark.line + 1
            if (k.tag, k.value) in seen:
                self.fail(_child(path, k), f"duplicate key {preview(k.value)}: defined on line "
                                           f"{seen[k.tag, k.value]} and again on line {line} "
                                           f"(YAML would keep only the last)")
            seen[k.tag, k.value] = line


def _child(path: str, key: yaml.Node) -> str:
    if not isinstance(key, yaml.ScalarNode):
        return join(path, "?")
    return join(path, key.value if len(key.value) <= 40 else key.value[:37] + "...")
