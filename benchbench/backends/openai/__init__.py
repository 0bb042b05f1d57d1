"""Any OpenAI-compatible server: dialects, SSE client, responses."""
