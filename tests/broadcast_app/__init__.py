"""A model for tests/test_broadcast.py: changes to it are announced to groups."""
