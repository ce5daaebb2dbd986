"""Scoring: a batch through a model to per-sequence log-probs (`logps`) or a reward model's rewards (`reward_model`)."""
