"""Throwaway real servers for the tests, started without Docker on free loopback ports.

One module per server (postgres, mongo, dynamodb, cosmos, firestore, redis), each a
``ThrowawayServer``; ``process`` starts and stops a server's process group; ``pool`` starts
each server once per session on first use; ``plugin`` holds the pytest fixtures
(``postgres_url``, ``mongo_url``, ...). README_SECTION.md tells how to run them with Docker.
"""
