"""Training: policy SFT (TRL) and the process preference model (pairwise Bradley-Terry), saved as
Hugging Face folders. No Dagster here; `stages` and the assets call these."""
