"""Scenario schema, validation and command-line overrides."""
