"""The soak's time series: consumer lag and each process's RSS every few seconds, the
windows they are judged on, and their plot.

Lag is the group's: the sum over partitions of the end offset minus the committed offset
(a partition with nothing committed yet counts from 0; the topic is new).
"""

from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.pipeline import Pipeline
from tests.processes import Process

EVERY_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class Sample:
    seconds: float  # since the first push
    lag: int
    rss_kib: dict[str, int]


@dataclass
class Series:
    samples: list[Sample] = field(default_factory=list)

    def between(self, start: float, end: float) -> list[Sample]:
        return [s for s in self.samples if start <= s.seconds <= end]

    def mean_rss_kib(self, name: str, start: float, end: float) -> float:
        values = [s.rss_kib[name] for s in self.between(start, end) if s.rss_kib.get(name)]
        return statistics.fmean(values) if values else float("nan")

    def mean_lag(self, start: float, end: float) -> float:
        values = [s.lag for s in self.between(start, end)]
        return statistics.fmean(values) if values else float("nan")

    def max_lag(self, start: float, end: float) -> int:
        return max((s.lag for s in self.between(start, end)), default=0)


class LagProbe:
    """The consumer group's total lag on `topic`, read with an admin client and a consumer."""

    def __init__(self, bootstrap: str, topic: str, group: str) -> None:
        from aiokafka import AIOKafkaConsumer
        from aiokafka.admin import AIOKafkaAdminClient

        self._topic, self._group = topic, group
        self._admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        self._consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
        self._partitions: list[Any] = []

    async def __aenter__(self) -> LagProbe:
        from aiokafka import TopicPartition

        await self._admin.start()
        await self._consumer.start()
        await self._consumer._client.force_metadata_update()
        parts = self._consumer.partitions_for_topic(self._topic) or set()
        self._partitions = [TopicPartition(self._topic, p) for p in sorted(parts)]
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._consumer.stop()
        await self._admin.close()

    async def lag(self) -> int:
        committed = await self._admin.list_consumer_group_offsets(self._group, partitions=self._partitions)
        end = await self._consumer.end_offsets(self._partitions)
        return sum(end[tp] - max(0, committed[tp].offset if tp in committed else 0) for tp in self._partitions)

    async def group(self) -> tuple[str, int]:
        """The group's state (Stable, PreparingRebalance, ...) and how many members it has."""
        [response] = await self._admin.describe_consumer_groups([self._group])
        [group] = response.to_object()["groups"]
        return str(group["state"]), len(group["members"])


async def wait_for_group(probe: LagProbe, members: int, seconds: float = 300) -> None:
    """Until all `members` consumers share the partitions, so the clock starts on a settled group
    (on a fresh broker under load, creating __consumer_offsets alone can take a minute)."""
    deadline = time.monotonic() + seconds
    while (state := await probe.group()) != ("Stable", members):
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"the consumer group is {state[0]} with {state[1]} of {members} members after {seconds:.0f} s"
            )
        await asyncio.sleep(0.5)


def consumer_counts(pipeline: Pipeline, metric: str, label: str) -> dict[str, float]:
    """A counter of every consumer's /metrics, summed over the consumers, by `label`."""
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    counts: dict[str, float] = {}
    for url in pipeline.metrics_urls:
        for family in text_string_to_metric_families(httpx.get(url, timeout=10).text):
            for sample in family.samples:
                if sample.name == metric + "_total":
                    key = sample.labels.get(label, "")
                    counts[key] = counts.get(key, 0.0) + sample.value
    return counts


def rss(processes: list[Process]) -> dict[str, int]:
    return {p.name: p.rss_kib() for p in processes}


async def sample_until(probe: LagProbe, pipeline: Pipeline, series: Series, start: float, stop: asyncio.Event) -> None:
    """A sample every EVERY_SECONDS (times from `start`, a perf_counter) until `stop` is set."""
    while True:
        now = time.perf_counter()
        series.samples.append(Sample(now - start, await probe.lag(), rss(pipeline.processes())))
        for p in pipeline.processes():
            p.sample_memory()
        try:
            await asyncio.wait_for(stop.wait(), max(0.0, now + EVERY_SECONDS - time.perf_counter()))
            return
        except TimeoutError:
            pass


def plot(
    series: Series, pushes_end: float, windows: tuple[tuple[float, float], tuple[float, float]], path: Path
) -> Path:
    """Two small panels, lag and RSS per process over minutes, as a PNG at `path`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    minutes = [s.seconds / 60 for s in series.samples]
    fig, (lag_ax, rss_ax) = plt.subplots(2, 1, figsize=(7.5, 5.2), sharex=True, dpi=100)
    lag_ax.plot(minutes, [s.lag / 1000 for s in series.samples], color="tab:blue", lw=1.4)
    lag_ax.set_ylabel("consumer lag\n(thousand records)")
    lag_ax.set_ylim(0, max((s.lag for s in series.samples), default=0) / 1000 * 1.35 or 1)  # room for the legend
    names = list(series.samples[0].rss_kib) if series.samples else []
    for name in names:
        rss_ax.plot(minutes, [s.rss_kib.get(name, 0) / 1024 for s in series.samples], lw=1.2, label=name)
    rss_ax.legend(loc="lower right", fontsize=8, ncol=len(names))
    rss_ax.set_ylabel("RSS (MB)")
    rss_ax.set_ylim(bottom=0)
    rss_ax.set_xlabel("minutes since the first push")
    labels = ("after warm-up", "last third")
    for ax in (lag_ax, rss_ax):
        ax.axvline(pushes_end / 60, color="grey", ls="--", lw=1, label="last push")
        for (start, end), color, label in zip(windows, ("tab:green", "tab:orange"), labels, strict=True):
            ax.axvspan(start / 60, end / 60, color=color, alpha=0.12, lw=0, label=label)
        ax.grid(alpha=0.3)
    lag_ax.legend(loc="upper left", fontsize=8, ncol=3)
    lag_ax.set_title("make bench-soak: consumer lag and RSS per process (windows compared shaded)", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
