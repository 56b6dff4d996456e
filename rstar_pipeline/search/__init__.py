"""Monte-Carlo tree search over code-augmented steps, and the training data derived from its trees.

`mcts.run_search` builds trees (`tree`), choosing children by UCT (`select`) under a `SearchConfig`
(`config`); `extract` turns `tree_nodes` rows into trajectories and preference pairs in SQL.
"""
