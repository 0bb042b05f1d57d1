"""LightLLM's api_server: launch flags, native protocol, client."""
