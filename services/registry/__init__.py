"""The real-estate register: its rows (`models`), the property read model (`properties`) and the
changes to it (`changes`).

Public to other domains: the read model a guardian's or a clerk's read goes through.
"""

from services.registry.models import EMPTY_PAGE, EncodedPropertyPage, PropertyRecord
from services.registry.properties import PropertyFilters, cached_properties, property_detail
from services.registry.reads import PageRequest

__all__ = [
    "EMPTY_PAGE",
    "EncodedPropertyPage",
    "PageRequest",
    "PropertyFilters",
    "PropertyRecord",
    "cached_properties",
    "property_detail",
]
