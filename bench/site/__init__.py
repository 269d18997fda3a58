"""One minimal Django project that runs on hubbub or on Channels.

``BENCH_FRAMEWORK`` (``hubbub`` or ``channels``) picks the framework the consumers
and views import, and ``BENCH_LAYER`` (``inmemory``, ``redis`` or ``pubsub``) the
channel layer; the code is otherwise the same line for line, as a port would be.
"""
