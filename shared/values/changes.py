"""Partial changes: a pydantic model whose fields are all optional, where a field left out
keeps its value and an explicit null is refused unless the field says null means
something (a field of ``NULLABLE``)."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator, model_validator


class PartialChange(BaseModel):
    """A change of some fields of one object; unknown fields are refused."""

    model_config = ConfigDict(extra="forbid")

    NULLABLE: ClassVar[frozenset[str]] = frozenset()

    @field_validator("*", mode="before")
    @classmethod
    def _not_null(cls, value: object, info: ValidationInfo) -> object:
        if value is None and info.field_name not in cls.NULLABLE:
            raise ValueError("may not be null")
        return value

    @model_validator(mode="after")
    def _names_a_field(self) -> PartialChange:
        if not self.model_fields_set:
            raise ValueError("name at least one field to change")
        return self

    def changes(self) -> dict[str, Any]:
        """The fields this change names, with their new values."""
        return {name: getattr(self, name) for name in self.model_fields_set}
