"""A customer's task (opgave, spec §2): which records and which forms an answer takes."""

from __future__ import annotations

import enum
from dataclasses import dataclass

#: Every OFF4 person record type a task may ask for (spec §6).
OFF4_RECORD_TYPES = frozenset({f"{n:03d}" for n in range(1, 21)} | {"050"})


class NameFormat(enum.Enum):
    """How ADRNVN is written."""

    LAST_FIRST = "last_first"  # "Jensen,Hans Peter" (the default)
    FIRST_LAST = "first_last"  # "Hans Peter Jensen"


class AddressStyle(enum.Enum):
    """How STANDARDADR is written (spec §8.4)."""

    HISTORIC = "historic"  # "Boulevarden 101,1 mf"
    STYLE_2023 = "2023"  # "Boulevarden 101, 1. mf"


@dataclass(frozen=True, slots=True)
class Task:
    """The task parameters that shape an answer; the defaults are the spec's."""

    name_format: NameFormat = NameFormat.LAST_FIRST
    exclude_protected: bool = True
    deceased_address: bool = False
    off4_records: frozenset[str] = OFF4_RECORD_TYPES
    address_style: AddressStyle = AddressStyle.HISTORIC
    task_suffix: str = "01"

    def __post_init__(self) -> None:
        unknown = self.off4_records - OFF4_RECORD_TYPES
        if unknown:
            raise ValueError(f"off4_records: unknown record type {sorted(unknown)[0]!r}")
        if len(self.task_suffix) != 2 or not (
            self.task_suffix.isascii() and self.task_suffix.isdigit()
        ):
            raise ValueError(f"task_suffix: {self.task_suffix!r} is not two digits")
