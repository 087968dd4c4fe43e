"""Bounds on what a YAML text can make us build: aliases that expand, nesting that recurses.

PyYAML resolves an alias (`*a`) to the very node its anchor (`&a`) names, so a 600-byte recipe of
nine nested nine-fold aliases is a small graph that stands for 9**9 values: anything that walks
it as a tree (validation, copying, an error message quoting the value) builds all of them (13.7
GB and 99 s before this bound). `BoundedComposer` counts the values the document stands for,
aliases expanded, once it is composed and before anything is constructed, and refuses it past
`MAX_VALUES`; it also refuses nesting deeper than `MAX_DEPTH` (PyYAML composes recursively, so a
1 KB run of `[` would otherwise end in a RecursionError). A recipe holds a few hundred values.
"""

from __future__ import annotations

import yaml

MAX_VALUES = 100_000  # values of a document with its aliases expanded; recipes hold hundreds
MAX_DEPTH = 64  # nesting levels; a recipe nests three or four


class YamlLimitError(yaml.YAMLError):
    """A YAML text over one of the bounds above; the message names the bound."""


class BoundedComposer:
    """A mixin for a yaml Loader (put it first among the bases): `compose_node` refuses nesting
    past MAX_DEPTH, `get_single_node` refuses a document that expands past MAX_VALUES."""

    _depth = 0

    def compose_node(self, parent, index):
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise YamlLimitError(
                    f"nested more than {MAX_DEPTH} levels deep (line "
                    f"{self.peek_event().start_mark.line + 1}); a recipe nests a few levels"
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def get_single_node(self):
        node = super().get_single_node()
        if node is not None:
            expanded = expanded_size(node, MAX_VALUES)
            if expanded > MAX_VALUES:
                raise YamlLimitError(
                    f"its aliases (*name) expand to more than {MAX_VALUES:,} values (the bound "
                    "on a document's size, aliases expanded); a recipe holds a few hundred: "
                    "write the values out, or use fewer nested aliases"
                )
        return node


def expanded_size(root: yaml.Node, limit: int) -> int:
    """How many values `root` stands for with every alias expanded, counted up to just past
    `limit`: each distinct node's size is computed once (post-order, no recursion), so an alias
    bomb is measured in the time of its small graph. An alias inside its own anchor (a cycle)
    counts as past the limit."""
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()  # entered, children not yet sized: a cycle if met again
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        if id(node) in sizes:
            continue
        children = _children(node)
        if children_done or not children:
            open_nodes.discard(id(node))
            sizes[id(node)] = min(limit + 1, 1 + sum(sizes.get(id(c), 0) for c in children))
            continue
        if id(node) in open_nodes:
            return limit + 1
        open_nodes.add(id(node))
        stack.append((node, True))
        for child in children:
            if id(child) in open_nodes:
                return limit + 1
            if id(child) not in sizes:
                stack.append((child, False))
    return sizes[id(root)]


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


class BoundedSafeLoader(BoundedComposer, yaml.SafeLoader):
    """PyYAML's safe loader with the bounds above."""


def safe_load(text: str):
    """`yaml.safe_load` with the bounds above (YamlLimitError, a YAMLError, past them)."""
    return yaml.load(text, Loader=BoundedSafeLoader)  # noqa: S506 (a SafeLoader subclass)
