"""Throughput by workers per service: the same closed loop on a suite of one gunicorn worker per
service (`WEB_CONCURRENCY=1`), then of two. Messages per second through the gateway, and the time
to first delta each adds over the simulator read directly.

Method: for each worker count, start a fresh suite, make 8 users and their BYOK threads, warm up,
then run the 100-stream closed loop of `run.concurrent` (10 s counted, 50 tokens 20 ms apart, so
each stream lasts at least 1 s) through the gateway and then directly against the simulator.
Messages per second are the gateway streams that started in the counted window and completed,
divided by its length; "added" is the gateway's first-delta percentile minus the direct one.
"""

from __future__ import annotations

from dataclasses import dataclass

from bench import harness
from bench.stats import fmt, table


@dataclass
class WorkersRow:
    workers: int
    messages_per_s: float
    failed: int
    added_p50: float
    added_p99: float
    cpu_cores: float  # the suite's processes while the gateway loop ran (1.0 = one core)
    machine_cores: float


def measure(workers: int, args, cfg) -> WorkersRow:
    """One suite of `workers` workers per service, measured with the 100-stream closed loop."""
    from bench.run import PROCS, Summary, concurrent, warm_up

    extra_env = {**dict(item.split("=", 1) for item in args.env), "WEB_CONCURRENCY": str(workers)}
    bench = harness.start(args.postgres, args.redis, args.log_level, extra_env)
    try:
        users = harness.make_users(bench, cfg.users)
        slots = harness.make_threads(bench, users, cfg.concurrency * 3)
        direct = harness.direct_target(bench, users[0].api_key)
        warm_up(slots, direct, cfg)
        gateway, straight, (cpu_gateway, _n), _direct_cost = concurrent(bench, slots, direct, cfg)
        cpu = cpu_gateway.percent()
        via_gateway, direct_only = Summary.of(gateway), Summary.of(straight)
        completed = via_gateway.total - len(via_gateway.failed)
        return WorkersRow(
            workers=workers,
            messages_per_s=completed / cfg.duration,
            failed=len(via_gateway.failed),
            added_p50=via_gateway.p("ttfd", 50) - direct_only.p("ttfd", 50),
            added_p99=via_gateway.p("ttfd", 99) - direct_only.p("ttfd", 99),
            cpu_cores=sum(cpu[name] for name in PROCS) / 100,
            machine_cores=cpu["machine"] / 100,
        )
    finally:
        bench.stop()


def workers_table(rows: list[WorkersRow], cfg) -> str:
    """The markdown section for docs/benchmarks.md."""
    lines = [
        f"Workers per service ({cfg.concurrency} streams, closed loop, {cfg.duration:.0f} s counted; "
        "CPU in cores while the gateway loop ran, 1.0 = one core; the machine's includes the bench client):",
        "",
        table(
            [
                "workers per service",
                "messages/s",
                "failed",
                "added first delta p50",
                "added p99",
                "suite CPU",
                "machine CPU",
            ],
            [
                [
                    str(row.workers),
                    f"{row.messages_per_s:.1f}",
                    str(row.failed),
                    f"{fmt(row.added_p50)} ms",
                    f"{fmt(row.added_p99)} ms",
                    f"{row.cpu_cores:.2f}",
                    f"{row.machine_cores:.2f}",
                ]
                for row in rows
            ],
        ),
    ]
    return "\n".join(lines)


def run_workers(args, cfg, counts: list[int]) -> str:
    rows = []
    for workers in counts:
        print(f"Workers per service: {workers}", flush=True)
        rows.append(measure(workers, args, cfg))
        print(workers_table(rows[-1:], cfg), flush=True)
    return workers_table(rows, cfg)
