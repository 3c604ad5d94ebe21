"""The city-sized register (issue 15): the demo's generator at a million persons, bulk-loaded into
PostgreSQL with COPY (docs/scale.md). `rows` makes the rows, `bulk` drops and remakes indexes and
constraints and COPYs, `load` is the command's use case, `progress` its bars."""

from demo.city.load import CityLoadRefused, CityLoadReport, seed_city

__all__ = ["CityLoadRefused", "CityLoadReport", "seed_city"]
