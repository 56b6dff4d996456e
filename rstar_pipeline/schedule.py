"""The self-evolution schedule: what each of the four rounds does by default (paper, reference §2.6).

Round 1 bootstraps: a strong bootstrap model (the mini world's teacher here), the few-shot prompt,
terminal-guided Q, 8 rollouts. Round 2: the round-1 policy, the fine-tuned prompt, terminal-guided Q,
16 rollouts. Rounds 3-4: the previous round's policy and PPM, PPM-augmented Q; round 4 adds rollouts
for problems no earlier round solved. Presets in assets/configs override sizes (small for the mini
world, the paper's for GPU runs); these are the defaults the run config starts from.
"""

ROUNDS = (1, 2, 3, 4)


def round_defaults(r: int) -> dict[str, dict]:
    """Per config section of round r's search asset: the fields that differ from the dataclass defaults."""
    if r == 1:
        return {"search": dict(rollouts=8, template="bootstrap", temperature=0.7, errors_threshold=2),
                "generator": dict(backend="teacher")}
    search = dict(rollouts=16, template="sft", temperature=1.0, errors_threshold=1, ppm_init=r >= 3)
    if r == 4:
        search["unsolved_rollouts"] = 64
    return {"search": search, "generator": dict(backend="transformers")}


def policy_ref(r: int) -> str:
    return f"round_{r}/policy"


def ppm_ref(r: int) -> str:
    return f"round_{r}/ppm"
