"""hubbub's benchmark suite: hubbub and Django Channels on the same work, in the same run.

``python -m bench`` (``make bench``) runs every scenario; ``--quick`` runs a short
version of each. Servers run pinned to one core and the load generator to the
other, so that a server's own CPU time per operation can be read cleanly; the
figures that matter are ratios between targets measured side by side.
"""
