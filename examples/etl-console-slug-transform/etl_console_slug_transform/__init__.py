"""An example third-party transform: `slug` turns a text column into a URL slug."""
from __future__ import annotations

import re
import unicodedata

import marshmallow as ma

from etl_console.transforms import ColumnsRefused, row_transform


class SlugConfig(ma.Schema):
    class Meta:
        unknown = ma.RAISE

    column = ma.fields.String(required=True, metadata={"description": "The text column to turn into a slug"})
    max_length = ma.fields.Integer(load_default=80, validate=ma.validate.Range(min=1))


def _same_columns(columns: list[str]) -> list[str]:
    return list(columns)


@row_transform(output_columns=_same_columns, config_schema=SlugConfig)
def _slug(row: dict, config: dict) -> dict:
    """Replace a text column with its slug: 'The Big Sleep (1946)!' -> 'the-big-sleep-1946'.
    Accents are folded to ASCII; a null stays null."""
    value = row.get(config["column"])
    if value is not None:
        ascii_text = unicodedata.normalize("NFKD", value).encode("ascii", "ignore").decode()
        value = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")[: config["max_length"]].rstrip("-")
    return {**row, config["column"]: value}


class Slug(_slug):
    def output_columns(self, columns):
        if self.config["column"] not in columns:
            raise ColumnsRefused(f"no column {self.config['column']} (columns here: {', '.join(columns)})")
        return list(columns)
