"""Guarded YAML loading for profiles and templates: size, nesting and alias limits.

``yaml.safe_load`` refuses Python tags, but not documents that cost too much to
use: 20,000 nested brackets overflow the composer's recursion; an anchor that
holds an alias to itself is a cycle that recursive code (the ``extends`` merge)
never leaves; aliases to aliases expand exponentially ("billion laughs") once
the data is validated, merged or dumped; a huge file or a thousand-digit number
takes minutes to parse. This loader checks all of that while composing the node
graph, before any Python object is built, and raises ``YamlRefused`` (a
``yaml.YAMLError``) with the line, so callers handle it with their other YAML errors.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from yaml.error import Mark, MarkedYAMLError
from yaml.events import AliasEvent
from yaml.nodes import MappingNode, Node, ScalarNode

# A real profile is a few KB (config.yaml: 9 KB); pure-Python PyYAML parses ~100 KB/s of
# dense YAML, so this bounds a start-up at a few seconds.
MAX_YAML_BYTES = 256 * 1024
MAX_NESTING = 64
# Nodes plus scalar characters, counting an alias as a full copy of its anchor:
# what validating, merging or dumping the data will walk.
MAX_EXPANDED_SIZE = 4 * MAX_YAML_BYTES
# int("9" * 5000) is refused by Python; sexagesimal ints (1:2:3...) are quadratic.
MAX_NUMBER_CHARS = 100
_LIMIT_TEXT = f"{MAX_YAML_BYTES // 1024} KiB ({MAX_YAML_BYTES:,} bytes)"
_NUMBER_TAGS = {"tag:yaml.org,2002:int", "tag:yaml.org,2002:float"}


class YamlRefused(MarkedYAMLError):
    """Well-formed YAML this loader will not read: too big, too deep, cyclic, too expanded."""

    def __init__(self, problem: str, mark: Mark | None = None) -> None:
        super().__init__(problem=problem, problem_mark=mark)


def read_yaml_text(path: Path) -> str:
    """The UTF-8 text of a regular file; one byte over ``MAX_YAML_BYTES`` is read, not more."""
    if path.exists() and not path.is_file():  # a FIFO would block, /dev/zero never ends
        raise YamlRefused("is not a regular file (a directory, device or pipe)")
    with path.open("rb") as handle:
        data = handle.read(MAX_YAML_BYTES + 1)
    if len(data) > MAX_YAML_BYTES:
        raise YamlRefused(f"is larger than the size limit of {_LIMIT_TEXT}")
    return data.decode("utf-8")


def load_yaml(text: str) -> Any:
    """``yaml.safe_load`` within the limits above; raises ``yaml.YAMLError``."""
    if len(text) > MAX_YAML_BYTES:
        raise YamlRefused(f"is longer than the size limit of {MAX_YAML_BYTES:,} characters")
    loader = _GuardedLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


class _GuardedLoader(yaml.SafeLoader):
    """A SafeLoader whose composer measures every node as it is built."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._open_anchors: list[str | None] = []  # one per node being composed
        self._measured: dict[int, tuple[int, int]] = {}  # id(node) -> (height, expanded size)

    def compose_node(self, parent: Node | None, index: Any) -> Node:
        event = self.peek_event()
        if isinstance(event, AliasEvent):
            if event.anchor in self._open_anchors:
                raise YamlRefused(
                    f"alias *{event.anchor} is inside the node it refers to (a cycle)",
                    event.start_mark,
                )
            return super().compose_node(parent, index)
        if len(self._open_anchors) >= MAX_NESTING:
            raise YamlRefused(f"nested deeper than {MAX_NESTING} levels", event.start_mark)
        self._open_anchors.append(event.anchor)
        try:
            node = super().compose_node(parent, index)
        finally:
            self._open_anchors.pop()
        self._measure(node)
        return node

    def _measure(self, node: Node) -> None:
        """Record the node's height and expanded size; its children are measured already."""
        if isinstance(node, ScalarNode):
            if node.tag in _NUMBER_TAGS and len(node.value) > MAX_NUMBER_CHARS:
                raise YamlRefused(
                    f"a number {len(node.value):,} characters long (limit {MAX_NUMBER_CHARS})",
                    node.start_mark,
                )
            self._measured[id(node)] = (0, 1 + len(node.value))
            return
        children = (
            [part for pair in node.value for part in pair]
            if isinstance(node, MappingNode)
            else node.value
        )
        measured = [self._measured[id(child)] for child in children]
        height = 1 + max((child_height for child_height, _ in measured), default=0)
        size = 1 + sum(child_size for _, child_size in measured)
        if height > MAX_NESTING:
            raise YamlRefused(f"aliases nest it deeper than {MAX_NESTING} levels", node.start_mark)
        if size > MAX_EXPANDED_SIZE:
            raise YamlRefused(
                f"aliases expand it to more than {MAX_EXPANDED_SIZE:,} values and characters",
                node.start_mark,
            )
        self._measured[id(node)] = (height, size)
