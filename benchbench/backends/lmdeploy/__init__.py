"""LMDeploy's in-process pipeline (TurboMind / PyTorch engines)."""
