"""The explainer: attention's five steps at every output word with the model's own numbers,
interventions (a masked source token, a silenced head), the training timeline and a study
side by side."""
