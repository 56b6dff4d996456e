"""Search trees as rows: a `Tree` is a list of `Node`s linked by `parent_id`.

Covers node statistics (visits, value sum, Q), paths, the text and the program of a node, and
turning a tree into `tree_nodes` rows. Selection, expansion and backup policy live in `mcts`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rstar_pipeline.problemsets import Problem
from rstar_pipeline.steps import StepKind, program


class Terminal:
    NONE = "none"
    ANSWER = "answer"  # a final answer, graded against the accepted answers
    CODE_ERROR = "code_error"  # too many consecutive steps whose code failed
    MAX_DEPTH = "max_depth"  # deeper than the search allows without an answer
    NO_VALID_CHILD = "no_valid_child"  # every sample of its expansion was unparsable


@dataclass
class Node:
    node_id: int
    parent_id: int | None
    depth: int
    kind: str  # "root" or a StepKind value
    text: str = ""  # what joins the solution: the step, plus the <output> block after <end_of_code>
    code: str = ""
    exec_status: str | None = None
    exec_output: str = ""
    terminal: str = Terminal.NONE
    final_answer: str | None = None
    is_correct: bool | None = None
    visits: int = 0
    value_sum: float = 0.0
    ppm_score: float | None = None
    consecutive_errors: int = 0
    rollout: int = -1  # the rollout that created it
    children: list[int] = field(default_factory=list)
    exhausted: bool = False  # every child is terminal or exhausted: nothing left to explore below
    mc_samples: int | None = None  # Monte-Carlo completions after this step (search.label), if labelled
    mc_correct: int | None = None

    @property
    def q(self) -> float:
        return self.value_sum / self.visits if self.visits else 0.0

    @property
    def is_terminal(self) -> bool:
        return self.terminal != Terminal.NONE

    def update(self, value: float) -> None:
        self.visits += 1
        self.value_sum += value


class Tree:
    def __init__(self, problem: Problem):
        self.problem = problem
        self.nodes: list[Node] = [Node(node_id=0, parent_id=None, depth=0, kind="root")]

    @property
    def root(self) -> Node:
        return self.nodes[0]

    def add_child(self, parent: Node, **fields) -> Node:
        child = Node(node_id=len(self.nodes), parent_id=parent.node_id, depth=parent.depth + 1, **fields)
        self.nodes.append(child)
        parent.children.append(child.node_id)
        return child

    def path(self, node: Node) -> list[Node]:
        """Root to `node`, inclusive."""
        out = [node]
        while out[-1].parent_id is not None:
            out.append(self.nodes[out[-1].parent_id])
        return out[::-1]

    def backup(self, node: Node, value: float, recursive: bool = True) -> None:
        for n in self.path(node) if recursive else [node]:
            n.update(value)

    def solution_text(self, node: Node) -> str:
        return "".join(n.text for n in self.path(node))

    def program(self, parent: Node, code: str) -> str:
        """The program a new code step under `parent` runs: the steps since the last <end_of_code>."""
        codes: list[str] = []
        for n in self.path(parent):
            if n.kind == StepKind.CODE_END.value:
                codes = []
            elif n.kind == StepKind.CODE.value:
                codes.append(n.code)
        return program(codes + [code])

    def rows(self) -> dict[str, list]:
        """Columns of this tree's `tree_nodes` rows (without round and shard)."""
        cols: dict[str, list] = {k: [] for k in _ROW_FIELDS}
        for n in self.nodes:
            cols["problem_id"].append(self.problem.problem_id)
            cols["node_id"].append(n.node_id)
            cols["parent_id"].append(n.parent_id)
            cols["depth"].append(n.depth)
            cols["kind"].append(n.kind)
            cols["step_text"].append(n.text)
            cols["code"].append(n.code)
            cols["exec_status"].append(n.exec_status)
            cols["exec_output"].append(n.exec_output)
            cols["terminal_kind"].append(n.terminal)
            cols["final_answer"].append(n.final_answer)
            cols["is_correct"].append(n.is_correct)
            cols["visits"].append(n.visits)
            cols["value_sum"].append(n.value_sum)
            cols["q_value"].append(n.q)
            cols["ppm_score"].append(n.ppm_score)
            cols["consecutive_errors"].append(n.consecutive_errors)
            cols["created_rollout"].append(n.rollout)
            cols["n_children"].append(len(n.children))
            cols["mc_samples"].append(n.mc_samples)
            cols["mc_correct"].append(n.mc_correct)
        return cols


_ROW_FIELDS = ("problem_id", "node_id", "parent_id", "depth", "kind", "step_text", "code", "exec_status",
               "exec_output", "terminal_kind", "final_answer", "is_correct", "visits", "value_sum", "q_value",
               "ppm_score", "consecutive_errors", "created_rollout", "n_children", "mc_samples",
               "mc_correct")
