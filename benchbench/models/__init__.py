"""Embedded models built locally and InternVL's split_model device-map arithmetic."""
