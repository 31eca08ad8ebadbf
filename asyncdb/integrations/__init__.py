"""Framework integrations: FastAPI, aiohttp, a Redis rate limiter, LangGraph persistence."""
