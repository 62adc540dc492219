"""What a sample, a dataset, a screenshot or a run config amounts to: plain data that ui/ turns into prose."""
