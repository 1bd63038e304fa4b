"""Reading a ``/metrics`` page back: samples by name and labels, for exact assertions."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

__all__ = ["Samples", "parse"]


class Samples(dict[tuple[str, frozenset[tuple[str, str]]], float]):
    """The samples of a metrics page: ``samples.value(name, **labels)``."""

    def value(self, name: str, **labels: str) -> float:
        """The sample *name* with exactly *labels*; 0 if it is absent (never incremented)."""
        return self.get((name, frozenset(labels.items())), 0.0)

    def total(self, name: str, **labels: str) -> float:
        """The sum of every sample *name* whose labels include *labels*."""
        wanted = set(labels.items())
        return sum(value for (n, got), value in self.items() if n == name and wanted <= got)

    def names(self) -> set[str]:
        """Every sample name on the page."""
        return {name for name, _ in self}


def parse(text: str) -> Samples:
    """Parse a Prometheus text-format page."""
    samples = Samples()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[sample.name, frozenset(sample.labels.items())] = sample.value
    return samples
