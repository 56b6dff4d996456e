"""Arrow schemas of every table the pipeline writes. Parquet files are written with exactly these.

Keys: problems (problem_id); tree_nodes (round, problem_id, node_id); trajectories (round,
problem_id, leaf_node_id); preference_pairs (round, problem_id, kind, prefix_node_id,
chosen_node_id, rejected_node_id); checkpoints (round, kind); evaluations (round, benchmark, method,
model, problem_id). Every round table also carries `shard`, its storage partition (for checkpoints,
the kind; for evaluations, benchmark.method).
"""

import pyarrow as pa

PROBLEMS = pa.schema([
    ("problem_id", pa.string()),
    ("source", pa.string()),
    ("split", pa.string()),
    ("question", pa.string()),
    ("answers", pa.list_(pa.string())),
    ("level", pa.int32()),
    ("subject", pa.string()),
    ("shard", pa.string()),
])

REJECTED_PROBLEMS = pa.schema([
    ("source", pa.string()),
    ("row", pa.int64()),
    ("problem_id", pa.string()),
    ("reason", pa.string()),
    ("preview", pa.string()),
    ("shard", pa.string()),
])

TREE_NODES = pa.schema([
    ("round", pa.int32()),
    ("shard", pa.string()),
    ("problem_id", pa.string()),
    ("node_id", pa.int32()),
    ("parent_id", pa.int32()),  # null for the root
    ("depth", pa.int32()),
    ("kind", pa.string()),  # root, code, code_end, answer
    ("step_text", pa.string()),  # the step as it joins the solution (with <output> after <end_of_code>)
    ("code", pa.string()),
    ("exec_status", pa.string()),  # ok, error, timeout, memory, killed; null for root and answers
    ("exec_output", pa.string()),  # stdout when ok, else the error line
    ("terminal_kind", pa.string()),  # none, answer, code_error, max_depth, no_valid_child
    ("final_answer", pa.string()),
    ("is_correct", pa.bool_()),
    ("visits", pa.int32()),
    ("value_sum", pa.float64()),
    ("q_value", pa.float64()),
    ("ppm_score", pa.float64()),
    ("consecutive_errors", pa.int32()),
    ("created_rollout", pa.int32()),
    ("n_children", pa.int32()),
    ("mc_samples", pa.int32()),  # Monte-Carlo completions sampled after this step (search.label_completions); null if none
    ("mc_correct", pa.int32()),  # how many of them reached a correct answer
])

TRAJECTORIES = pa.schema([
    ("round", pa.int32()),
    ("shard", pa.string()),
    ("problem_id", pa.string()),
    ("leaf_node_id", pa.int32()),
    ("node_ids", pa.list_(pa.int32())),  # root excluded
    ("steps", pa.list_(pa.string())),
    ("prompt", pa.string()),  # the fine-tuned policy's prompt for the question
    ("response", pa.string()),  # the steps joined: the SFT target
    ("final_answer", pa.string()),
    ("terminal_kind", pa.string()),
    ("is_correct", pa.bool_()),
    ("has_exec_error", pa.bool_()),
    ("n_steps", pa.int32()),
    ("mean_q", pa.float64()),
    ("min_q", pa.float64()),
    ("rank", pa.int32()),  # 1 = best of its problem: correct and clean first, then by (mean_q, min_q)
    ("selected_for_sft", pa.bool_()),
])

PREFERENCE_PAIRS = pa.schema([
    ("round", pa.int32()),
    ("shard", pa.string()),
    ("problem_id", pa.string()),
    ("kind", pa.string()),  # step (siblings under one prefix) or final (whole solutions)
    ("prefix_node_id", pa.int32()),
    ("chosen_node_id", pa.int32()),
    ("rejected_node_id", pa.int32()),
    ("prompt", pa.string()),  # policy prompt + the shared prefix of steps
    ("chosen", pa.string()),
    ("rejected", pa.string()),
    ("q_chosen", pa.float64()),
    ("q_rejected", pa.float64()),
    ("edit_distance", pa.int32()),
    ("pos_count", pa.int32()),
    ("neg_count", pa.int32()),
    ("weight", pa.float64()),  # 1 / (pos_count * neg_count)
])

CHECKPOINTS = pa.schema([
    ("round", pa.int32()),  # 0 for the base model
    ("shard", pa.string()),  # the partition: the kind again
    ("kind", pa.string()),  # base, policy or ppm
    ("path", pa.string()),  # a Hugging Face folder (or a hub id for an external base)
    ("base_model", pa.string()),  # what it was initialised from
    ("identity", pa.string()),  # hash of config, inputs and initialisation: equal means the same model
    ("train_rows", pa.int64()),
    ("eval_rows", pa.int64()),
    ("metrics", pa.string()),  # JSON: losses, accuracy, margin, greedy pass@1, wall time
    ("config", pa.string()),  # JSON
    ("created_at", pa.string()),
])

EVALUATIONS = pa.schema([
    ("round", pa.int32()),  # the round whose policy (and PPM) was evaluated; 0 for any other checkpoint
    ("shard", pa.string()),  # the partition: benchmark.method (plus the model's digest when round is 0)
    ("benchmark", pa.string()),
    ("method", pa.string()),  # greedy, best_of_n, majority
    ("model", pa.string()),  # the policy checkpoint folder
    ("problem_id", pa.string()),
    ("prediction", pa.string()),  # the extracted answer, null when there was none
    ("correct", pa.bool_()),
    ("score", pa.float64()),  # best_of_n: the PPM score of the chosen solution; majority: its vote share
])

TABLES = {
    "problems": PROBLEMS,
    "rejected_problems": REJECTED_PROBLEMS,
    "tree_nodes": TREE_NODES,
    "trajectories": TRAJECTORIES,
    "preference_pairs": PREFERENCE_PAIRS,
    "checkpoints": CHECKPOINTS,
    "evaluations": EVALUATIONS,
}
ROUND_TABLES = ("tree_nodes", "trajectories", "preference_pairs", "checkpoints", "evaluations")
