"""A site for tests/test_gctune.py: ``HUBBUB_GC`` from the environment, metrics and an echo socket."""
