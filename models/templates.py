"""Document templates as the profile declares them, and the field values they yield.

A template (``TemplateSpec``) names the fields to pull out of a page and, for
each one, a rule (``FieldSpec``): which kind of value it is and which printed
labels announce it. Templates live in the profile's ``templates:`` section so
users can add their own; the built-in ones are in ``builtin_templates.yaml``.
The rules that apply them are in ``utils.fields``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from models.safe_yaml import load_yaml
from utils.errors import ConfigError

BUILTIN_TEMPLATES_PATH = Path(__file__).with_name("builtin_templates.yaml")
BUILTIN_TEMPLATES_YAML = BUILTIN_TEMPLATES_PATH.read_text(encoding="utf-8")

FieldKind = Literal["company", "address", "date", "amount", "keyword_value", "regex", "mrz"]
MrzFieldName = Literal[
    "document_number",
    "surname",
    "given_names",
    "nationality",
    "birth_date",
    "sex",
    "expiry_date",
    "issuing_country",
]


class FieldSpec(BaseModel):
    """How to find one field.

    - ``kind``: what the value looks like.
      ``company``: the business name near the top (a line holding one of
      ``keywords``, e.g. "SDN BHD", else the first plausible line).
      ``address``: the lines starting at the first one holding one of
      ``keywords`` (street words) or ``region_keywords`` up to the postcode line
      and its region.
      ``date``: a printed date, preferably on a line labelled with ``keywords``.
      ``amount``: a money amount on a line labelled with ``keywords``.
      ``keyword_value``: the text after a label (or on the line below it).
      ``regex``: group 1 of ``pattern`` on the first (or last) line it matches.
      ``mrz``: one field (``mrz_field``) of a passport / ID-card machine-readable zone.
    - ``keywords``: case-insensitive labels or markers; a space also matches no space.
    - ``exclude_keywords``: a line holding any of these is never used (e.g.
      "SUBTOTAL" for a total); for ``address`` they also end the address.
    - ``region_keywords`` (``address``): states, countries; they mark an address line
      like ``keywords`` do, and after the postcode only a line holding one of them
      continues the address ("SELANGOR DARUL EHSAN", not "AMPANG POINT CENTRE").
    - ``pattern``: regex with exactly one capture group. Required for ``regex``;
      for ``keyword_value`` the value must match it (group 1 is kept).
    - ``pick``: when several lines match, take the first or the last in reading order
      (a receipt's grand total is the last labelled total).
    - ``search_lines``: ``company`` and ``address`` only look at this many top lines.
    - ``after_field``: start looking below the line where this field (declared
      earlier in the template) was found, e.g. the address below the company name;
      from the top when that field was not found.
    """

    model_config = ConfigDict(extra="forbid")

    kind: FieldKind
    keywords: list[str] = Field(default_factory=list)
    exclude_keywords: list[str] = Field(default_factory=list)
    region_keywords: list[str] = Field(default_factory=list)
    pattern: str | None = None
    mrz_field: MrzFieldName | None = None
    pick: Literal["first", "last"] = "first"
    search_lines: int = Field(default=12, ge=1, le=200)
    after_field: str | None = None

    @field_validator("keywords", "exclude_keywords", "region_keywords")
    @classmethod
    def _no_blank_keywords(cls, keywords: list[str]) -> list[str]:
        if any(not keyword.strip() for keyword in keywords):
            raise ValueError("keywords must not be empty strings")
        return [keyword.strip() for keyword in keywords]

    @field_validator("pattern")
    @classmethod
    def _pattern_compiles_with_one_group(cls, pattern: str | None) -> str | None:
        if pattern is None:
            return None
        try:
            compiled = re.compile(pattern, re.IGNORECASE)
        except re.error as exc:
            raise ValueError(
                f"pattern {pattern!r} is not a valid regular expression: {exc}"
            ) from exc
        if compiled.groups != 1:
            raise ValueError(
                f"pattern {pattern!r} must have exactly one capture group (has "
                f"{compiled.groups}); use (?:...) for grouping that should not be captured"
            )
        return pattern

    @model_validator(mode="after")
    def _kind_has_what_it_needs(self) -> FieldSpec:
        if self.kind == "regex" and self.pattern is None:
            raise ValueError("kind 'regex' needs a 'pattern' with one capture group")
        if self.kind in ("amount", "keyword_value") and not self.keywords:
            raise ValueError(f"kind {self.kind!r} needs at least one entry in 'keywords'")
        if self.kind == "mrz" and self.mrz_field is None:
            raise ValueError("kind 'mrz' needs 'mrz_field' (e.g. document_number)")
        if self.kind != "mrz" and self.mrz_field is not None:
            raise ValueError("'mrz_field' only applies to kind 'mrz'")
        return self


class TemplateSpec(BaseModel):
    """A document type: a description and its fields, by name."""

    model_config = ConfigDict(extra="forbid")

    description: str = ""
    fields: dict[str, FieldSpec]

    @field_validator("fields")
    @classmethod
    def _has_fields(cls, fields: dict[str, FieldSpec]) -> dict[str, FieldSpec]:
        if not fields:
            raise ValueError("a template needs at least one field")
        declared: list[str] = []
        for name, spec in fields.items():
            if spec.after_field is not None and spec.after_field not in declared:
                raise ValueError(
                    f"field {name!r}: after_field {spec.after_field!r} must name a field "
                    f"declared before it (declared so far: {declared})"
                )
            declared.append(name)
        return fields


class FieldValue(BaseModel):
    """One extracted field: the text as found (or None), how sure, and where from."""

    model_config = ConfigDict(extra="forbid")

    value: str | None = None
    confidence: float = Field(default=0.0, ge=0.0, le=1.0)
    line: int | None = None  # the first line when the value spans several
    note: str | None = None


NOT_FOUND = FieldValue()


def templates_from_yaml(text: str, source: str = "templates") -> dict[str, TemplateSpec]:
    """Parse a YAML mapping ``name -> template``; any problem raises ``ConfigError``."""
    try:
        raw = load_yaml(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {exc}", hint="Fix the YAML syntax.") from exc
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{source}: expected a mapping of template name to template",
            hint="Write templates as `name: {description: ..., fields: {...}}`.",
        )
    templates = {}
    for name, body in raw.items():
        try:
            templates[str(name)] = TemplateSpec.model_validate(body)
        except ValidationError as exc:
            raise ConfigError(
                f"{source}: template {name!r} is invalid: {_first_error(exc)}",
                hint="See FieldSpec in models/templates.py for the allowed keys.",
            ) from exc
    return templates


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"])
    return f"{where}: {error['msg']}" if where else error["msg"]


def builtin_templates() -> dict[str, TemplateSpec]:
    """The receipt, invoice and passport templates, validated."""
    return templates_from_yaml(BUILTIN_TEMPLATES_YAML, source=BUILTIN_TEMPLATES_PATH.name)
