"""Deterministic, realistic Shanghai demo data: the register, its sign-in accounts, and the matching
civil-registry people and guardianships.

Why it is built this way:
- Every value comes from `random.Random` streams derived from the seed, so a seed always gives the
  same register (only the AES-GCM ciphertexts differ: their nonces are random by design).
- Persons are generated household by household in a stream of their own, so
  `civil_registry_dataset` rebuilds exactly the seeded people and guardianships without a database.
- Uniqueness is built in, not checked afterwards: ID-number sequences, phones, parcels and
  certificate numbers come from counters, never from "draw and retry against a set", so a million
  persons need no more memory than a few thousand (rows are written in batches of `batch_size`).
- We assign the primary keys, so a batch of rights can point at the units and persons of the same
  batch without reading them back; PostgreSQL's sequences are then moved past them, as Django's
  `loaddata` + `sqlsequencereset` do.

Ranges kept apart so generated data, the fixed identities and test data never collide (all test
rows come from tests/factories.py):

| value                              | generated                  | fixed identities | tests/factories.py |
|------------------------------------|----------------------------|------------------|--------------------|
| ID-number sequence (digits 15-17)  | 000-799                    | 900-999          | 800-899            |
| mobile prefix                      | 20, people._PHONE_PREFIXES | 1390000000x      | 170                |
| cadastral district (unit 7-9)      | 010-039                    | 002-005          | 900                |
| certificate sequence               | below 8,000,000            | identities.py    | from 9,000,000     |
| case number                        | year + county + 7 digits   | none             | "T" + 12 digits    |

Modules: places (districts, offices, roads, names, the register's date), identities (the fixed,
documented ones), companies, people (generated households and the civil-registry dataset), writer
(rows, keys and numbering), generated (estates, titles, mortgages, encumbrances, cases), seeder;
city (the same generator at a million persons, bulk-loaded into PostgreSQL: docs/scale.md).
"""

from demo.companies import credit_code
from demo.identities import (
    DemoBank,
    DemoBankClient,
    DemoCitizen,
    DemoIdentities,
    DemoProperty,
    DemoStaff,
    demo_identities,
)
from demo.people import CivilRegistryData, civil_registry_dataset, civil_registry_dataset_from_db
from demo.places import AS_OF, DISTRICTS, OFFICES, REGISTER_START, SHANGHAI, District
from demo.seeder import seed_demo_data

__all__ = [
    "AS_OF",
    "DISTRICTS",
    "OFFICES",
    "REGISTER_START",
    "SHANGHAI",
    "CivilRegistryData",
    "DemoBank",
    "DemoBankClient",
    "DemoCitizen",
    "DemoIdentities",
    "DemoProperty",
    "DemoStaff",
    "District",
    "civil_registry_dataset",
    "civil_registry_dataset_from_db",
    "credit_code",
    "demo_identities",
    "seed_demo_data",
]
