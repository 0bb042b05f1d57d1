"""CI performance gates: baselines, rules, judgement, console/Markdown/JUnit output."""
