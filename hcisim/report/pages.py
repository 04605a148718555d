"""The one Jinja environment of hcisim's HTML pages: run report, capacity, sweep.

Templates ship inside the package (``hcisim/templates/``) and are read through package
resources, so an installed hcisim renders reports without a checkout. Autoescape is on for
everything: user text (scenario names, descriptions, event reasons) is escaped, and only
HTML that hcisim rendered itself (pandas tables, escaped by pandas) is passed in as
``Markup`` via :func:`table_html`.
"""

from __future__ import annotations

import base64
import functools
from typing import Any

import jinja2
import pandas as pd
from markupsafe import Markup

from hcisim.report.units import format_duration, format_time

PACKAGE = "hcisim"
FOLDER = "templates"


@functools.cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.PackageLoader(PACKAGE, FOLDER), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True,
                             lstrip_blocks=True)
    env.filters["duration"] = format_duration
    env.filters["when"] = format_time
    return env


def render_page(template: str, **context: Any) -> str:
    """Render ``hcisim/templates/<template>`` with ``context``."""
    return environment().get_template(template).render(**context)


def table_html(df: pd.DataFrame, float_format: str = "{:,.2f}") -> Markup:
    """A table as HTML for a page: no index, floats copy-pasteable. pandas escapes every cell
    and header (``escape=True``), which is what makes marking the result safe correct."""
    if df.empty:
        return Markup('<p class="none">none</p>')
    return Markup(df.to_html(index=False, border=0, classes=["data"], na_rep="-", escape=True,
                             float_format=float_format.format))


def data_uri(png: bytes) -> str:
    """A PNG inlined into the page (the page stays one self-contained file)."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")
