"""A size in bytes as the user wrote it (`512m`, `4g`, `1.5GiB`), parsed once when the config is read."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from pydantic import GetCoreSchemaHandler
from pydantic_core import core_schema

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class ByteSize:
    """`bytes` for the code, `text` (what the user wrote) for every message and for config.json."""

    text: str
    bytes: int

    @classmethod
    def parse(cls, value: str | int | ByteSize) -> ByteSize:
        if isinstance(value, ByteSize):
            return value
        if isinstance(value, bool):
            raise ValueError(f"{value!r} is not a size; write it like 512m or 4g")
        if isinstance(value, int):
            if value < 0:
                raise ValueError(f"{value} is not a size; it must not be negative")
            return cls(str(value), value)
        if not isinstance(value, str):
            raise ValueError(f"{value!r} is not a size; write it like 512m or 4g")
        match = _SIZE.match(value)
        if not match:
            raise ValueError(f"{value!r} is not a size; write it like 512m or 4g")
        number, unit = float(match.group(1)), match.group(2).lower()
        return cls(value, int(number * 1024 ** " kmgt".index(unit or " ")))

    def __str__(self) -> str:
        return self.text

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: type[Any], handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(
            cls.parse,
            serialization=core_schema.plain_serializer_function_ser_schema(
                lambda size: size.text if isinstance(size, ByteSize) else size
            ),
        )
