"""``manage.py hubbub_status --url URL [--url URL ...]``: the live picture of running servers.

A command runs in a process of its own, which serves no connection: what it can
report is what the server processes publish. It reads each one's metrics
endpoint (``hubbub.metrics.metrics_view`` or ``metrics_app``, mounted by the
project), so it works with every channel layer, the in-memory one included.
Each answer names the process that gave it (PID and host); behind a load
balancer or ``--workers N`` a URL reaches whichever process answers, so give
each process a URL of its own (a port per worker, say) to see them all.
"""

from __future__ import annotations

import re
import urllib.error
import urllib.request
from collections import Counter as Tally
from typing import Any, Dict, List, Tuple

from django.core.management.base import BaseCommand, CommandError, CommandParser

Samples = Dict[str, List[Tuple[Dict[str, str], float]]]

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse(text: str) -> Samples:
    """Prometheus text exposition → ``{sample name: [(labels, value)]}`` (comments skipped)."""
    samples: Samples = {}
    for line in text.splitlines():
        found = _SAMPLE.match(line)
        if found is None:
            continue
        name, labels, value = found.groups()
        unescaped = {key: val.replace('\\"', '"').replace("\\n", "\n").replace("\\\\", "\\")
                     for key, val in _LABEL.findall(labels or "")}
        samples.setdefault(name, []).append((unescaped, float(value)))
    return samples


def _by(samples: Samples, name: str, label: str) -> Dict[str, float]:
    return {labels.get(label, ""): value for labels, value in samples.get(name, [])}


def _total(samples: Samples, name: str) -> float:
    return sum(value for _, value in samples.get(name, []))


class Command(BaseCommand):
    help = "Show connections per server process and the busiest groups, read from each process's metrics URL."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--url", action="append", default=[], metavar="URL",
                            help="A server process's hubbub metrics URL (repeat for each process).")
        parser.add_argument("--timeout", type=float, default=5.0, help="Seconds to wait for each URL (default 5).")

    def handle(self, *args: Any, url: List[str], timeout: float, **options: Any) -> None:
        if not url:
            raise CommandError("Give the metrics URL of each server process: --url http://HOST:PORT/metrics/ "
                               "(mount hubbub.metrics.metrics_view or metrics_app there).")
        if not timeout > 0:
            raise CommandError(f"--timeout must be a positive number of seconds, got {timeout}")
        for address in url:
            if not address.startswith(("http://", "https://")):
                raise CommandError(f"--url must be an http:// or https:// URL, got {address!r}")
        processes: Dict[Tuple[str, str], Samples] = {}
        failures: List[str] = []
        for address in url:
            try:
                samples = self._fetch(address, timeout)
            except (OSError, ValueError) as exc:
                failures.append(f"{address}: {exc}")
                continue
            info = samples.get("hubbub_process_info")
            if not info:
                failures.append(f"{address}: not a hubbub metrics endpoint (no hubbub_process_info)")
                continue
            processes[(info[0][0].get("hostname", "?"), info[0][0].get("pid", "?"))] = samples
        self._report(processes)
        for failure in failures:
            self.stderr.write(f"unreachable: {failure}")
        if not processes:
            raise CommandError("No server process answered.")

    def _fetch(self, address: str, timeout: float) -> Samples:
        with urllib.request.urlopen(address, timeout=timeout) as response:
            return parse(response.read().decode("utf-8", "replace"))

    def _report_losses(self, processes: Dict[Tuple[str, str], Samples]) -> None:
        """Messages lost, by layer and cause, summed over the processes (only when there are any)."""
        losses: Tally = Tally()
        for samples in processes.values():
            for labels, value in samples.get("hubbub_messages_lost_total", []):
                losses[(labels.get("layer", "?"), labels.get("cause", "?"))] += value
        if not any(losses.values()):
            return
        self.stdout.write("")
        self.stdout.write("messages lost (layer, cause), all processes:")
        for (layer, cause), count in sorted(losses.items()):
            if count:
                self.stdout.write(f"  {count:>10.0f}  {layer} {cause}")

    def _report(self, processes: Dict[Tuple[str, str], Samples]) -> None:
        write = self.stdout.write
        write(f"{'host':<20} {'pid':>7} {'ws open':>8} {'http open':>9} {'conns total':>11} "
              f"{'msgs in':>10} {'msgs out':>10} {'drops':>8} {'lost':>8} {'1013s':>6} {'layer rtt':>10}")
        busiest: Tally = Tally()
        totals = Tally()
        for (host, pid), samples in sorted(processes.items()):
            open_now = _by(samples, "hubbub_connections_open", "protocol")
            rtt = _total(samples, "hubbub_layer_roundtrip_seconds")
            row = {
                "ws": open_now.get("websocket", 0), "http": open_now.get("http", 0),
                "total": _total(samples, "hubbub_connections_total"),
                "in": _total(samples, "hubbub_messages_in_total"),
                "out": _total(samples, "hubbub_messages_out_total"),
                "drops": _total(samples, "hubbub_drops_total"),
                "lost": _total(samples, "hubbub_messages_lost_total"),
                "closes": _total(samples, "hubbub_slow_client_closes_total"),
            }
            totals.update(row)
            rtt_text = "n/a" if rtt != rtt else f"{rtt * 1000:.2f} ms"  # NaN: the probe failed
            write(f"{host[:20]:<20} {pid:>7} {row['ws']:>8.0f} {row['http']:>9.0f} {row['total']:>11.0f} "
                  f"{row['in']:>10.0f} {row['out']:>10.0f} {row['drops']:>8.0f} {row['lost']:>8.0f} "
                  f"{row['closes']:>6.0f} {rtt_text:>10}")
            busiest.update(_by(samples, "hubbub_busiest_group_sends", "group"))
        if len(processes) > 1:
            write(f"{'all':<20} {len(processes):>7} {totals['ws']:>8.0f} {totals['http']:>9.0f} "
                  f"{totals['total']:>11.0f} {totals['in']:>10.0f} {totals['out']:>10.0f} {totals['drops']:>8.0f} "
                  f"{totals['lost']:>8.0f} {totals['closes']:>6.0f}")
        self._report_losses(processes)
        write("")
        write("busiest groups (group_send calls since each process started):")
        if not busiest:
            write("  none yet")
        for group, sends in busiest.most_common(10):
            write(f"  {sends:>10.0f}  {group}")
