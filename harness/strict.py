"""The one base of every settings model: unknown keys are errors, values are frozen, and a
copy with changes is validated like the original (pydantic's `model_copy` is not)."""

from __future__ import annotations

from typing import Any, Self

from pydantic import BaseModel, ConfigDict


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def changed(self, **update: Any) -> Self:
        """A validated copy with `update` applied."""
        return type(self).model_validate({**self.model_dump(), **update})
