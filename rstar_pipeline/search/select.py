"""UCT selection: Q(s) + c * sqrt(ln N(parent) / N(s)), c = 2 by default.

`unvisited="zero"` is the reference's semantics: an unvisited child scores 0 (no bonus) and the
bonus is 0 while the parent is unvisited, so high-Q children are explored first. `"infinite"` is
the textbook variant: every unvisited child is tried before any visited one. Terminal and
exhausted children are never selected; ties go to the first child in creation order.
"""

from __future__ import annotations

import math

from rstar_pipeline.search.tree import Node, Tree


def uct_score(child: Node, parent: Node, c: float, unvisited: str) -> float:
    if child.visits == 0:
        return math.inf if unvisited == "infinite" else 0.0
    if parent.visits == 0:
        return child.q
    return child.q + c * math.sqrt(math.log(parent.visits) / child.visits)


def select_child(tree: Tree, parent: Node, c: float, unvisited: str) -> Node | None:
    """The child to descend into, or None when every child is terminal or exhausted."""
    best, best_score = None, -math.inf
    for child_id in parent.children:
        child = tree.nodes[child_id]
        if child.is_terminal or child.exhausted:
            continue
        score = uct_score(child, parent, c, unvisited)
        if score > best_score:  # strict: ties keep the earlier child
            best, best_score = child, score
    return best
