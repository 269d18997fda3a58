"""A small Django app for the integration tests: login, session and token consumers, a worker task."""
