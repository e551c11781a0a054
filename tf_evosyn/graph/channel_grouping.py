"""Coupled channels as union-find atoms, and the channel groups they end up in.

The graph walk (:mod:`tf_evosyn.graph.dependency`) gives every channel of every tensor an atom and
unites atoms that must live or die together; :func:`collect_groups` numbers the resulting sets
as :class:`~tf_evosyn.graph.dependency_graph.ChannelGroup` objects with their members, producers,
readers and the reasons they cannot be removed.
"""

from __future__ import annotations

import numpy as np

from tf_evosyn.graph.dependency_graph import ChannelGroup, Consumer


class UnionFind:
    """Disjoint sets of integer atoms (path compression; the smaller root wins)."""

    def __init__(self):
        self.parent: list[int] = []

    def new(self, count: int) -> np.ndarray:
        start = len(self.parent)
        self.parent.extend(range(start, start + count))
        return np.arange(start, start + count)

    def find(self, atom: int) -> int:
        root = atom
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[atom] != root:
            self.parent[atom], atom = root, self.parent[atom]
        return root

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(int(a)), self.find(int(b))
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def collect_groups(
    uf: UnionFind,
    members: dict[int, list[tuple[str, int]]],
    producers: dict[int, list[tuple[str, int]]],
    blocked: dict[int, list[str]],
    atoms_of: dict[str, np.ndarray],
    reads: list[tuple[str, int, np.ndarray]],
) -> tuple[list[ChannelGroup], dict[str, np.ndarray]]:
    """(groups numbered by first appearance of their root atom, tensor id -> group per channel).

    ``members``/``producers``/``blocked``: per atom, before union; ``reads``: (layer, input
    index, atoms read) of every call that reads channels.
    """
    # Number the groups by first appearance of their root atom.
    group_index: dict[int, int] = {}
    groups: list[ChannelGroup] = []

    def group_for(atom: int) -> int:
        root = uf.find(int(atom))
        if root not in group_index:
            group_index[root] = len(groups)
            groups.append(ChannelGroup(len(groups)))
        return group_index[root]

    atom_group = np.empty(len(uf.parent), dtype=np.int64)  # looked up once per atom
    for atom in range(len(uf.parent)):
        atom_group[atom] = group_for(atom)
        group = groups[atom_group[atom]]
        group.members.extend(members.get(atom, []))
        group.producers.extend(producers.get(atom, []))
        for why in blocked.get(atom, []):
            if why not in group.reasons:
                group.reasons.append(why)
    tensor_groups = {
        tid: atom_group[np.asarray(atoms, dtype=np.int64)] for tid, atoms in atoms_of.items()
    }
    consumers: dict[tuple[int, str, int], list[np.ndarray]] = {}
    for layer_name, input_index, atoms in reads:
        positions = atom_group[np.asarray(atoms, dtype=np.int64)]
        order = np.argsort(positions, kind="stable")
        gids, starts = np.unique(positions[order], return_index=True)
        for gid, chunk in zip(gids, np.split(order, starts[1:]), strict=True):
            consumers.setdefault((int(gid), layer_name, input_index), []).append(chunk)
    for (gid, layer_name, input_index), index_lists in consumers.items():
        indices = np.unique(np.concatenate(index_lists))
        groups[gid].consumers.append(Consumer(layer_name, input_index, indices))
    for group in groups:
        group.members.sort(key=lambda m: (m[0], m[1]))
        if not group.producers and not group.reasons:
            group.reasons.append("no Conv2D/Dense channel decides its life")
        group.removable = not group.reasons
    return groups, tensor_groups
