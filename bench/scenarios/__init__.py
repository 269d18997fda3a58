"""The scenarios of issue 6; each ``run(plan, redis)`` returns a ``report.Section``."""
