"""The alerts-and-incidents service (FastAPI).

Run: ``uvicorn --app-dir examples alerts_service.app:app``.
"""
