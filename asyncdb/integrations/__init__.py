"""Integrations of asyncdb with web frameworks and agent runtimes."""
