"""Records and what is computed from them: fairness, summary, statistics, consistency."""
