"""Scenario to hashed requests: images, InternVL tiling, prompt."""
