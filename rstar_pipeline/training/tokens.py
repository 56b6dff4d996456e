"""The step tags as special tokens: added once, in the same order, to every tokenizer the pipeline
fine-tunes (policy and PPM), so that ids match and a tag is always one token."""

from rstar_pipeline.steps import SPECIAL_TOKENS


def add_step_tokens(tokenizer, model=None) -> int:
    """Add the missing step tags as special tokens (and a pad token); resize `model` if it grew."""
    missing = [t for t in SPECIAL_TOKENS if t not in tokenizer.get_vocab()]
    added = tokenizer.add_special_tokens({"additional_special_tokens": missing}) if missing else 0
    if tokenizer.pad_token is None:
        added += tokenizer.add_special_tokens({"pad_token": "<|pad|>"})
    if model is not None and len(tokenizer) > model.get_input_embeddings().weight.shape[0]:
        model.resize_token_embeddings(len(tokenizer))
    if model is not None:
        model.config.pad_token_id = tokenizer.pad_token_id
    return added
