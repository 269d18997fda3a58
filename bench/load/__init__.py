"""The load generator: picows WebSocket clients on uvloop, run as their own process.

``python -m bench.load '<job as JSON>'`` runs one job (``echo``, ``broadcast`` or
``idle``) against running servers and prints its result as one JSON line. The job
reads the servers' CPU time and RSS itself (by PID, with psutil) at the exact
edges of each measurement window. Every job is bounded in clients and in time.

The scale scenario's load generators are different: ``python -m bench.load.fleet``
processes holding up to 19,000 bare listening sockets each (``rawws``), driven by
the scenario over their stdin and stdout (``bench/fleets.py``).
"""
