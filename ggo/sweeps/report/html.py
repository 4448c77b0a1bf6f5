"""The page as one self-contained HTML file: styles inline, every picture a ``data:`` URI.

Nothing is loaded from anywhere (no script, font or stylesheet from a network), so the file reads
the same offline, attached to a mail, or inline in the MLflow UI's artifact viewer. Written with
Jinja2 (autoescaping on: run names and errors are shown as text, never as markup).
"""

from __future__ import annotations

import base64

from ggo.sweeps.report.page import Page, Picture

_STYLE = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1b1b1b; margin: 0; background: #fafafa; }
main { max-width: 1120px; margin: 0 auto; padding: 24px 28px 60px; background: #fff; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 18px; margin: 34px 0 6px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
.lead { font-size: 15px; margin: 6px 0 12px; } .note { color: #555; font-size: 13px; margin: 4px 0; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 2px 14px; margin: 10px 0 0; font-size: 13px; }
dl.facts dt { color: #666; } dl.facts dd { margin: 0; word-break: break-all; }
figure { margin: 10px 0 18px; } figure img { max-width: 100%; height: auto; display: block; }
figcaption { color: #555; font-size: 12.5px; margin-top: 4px; }
table { border-collapse: collapse; font-size: 12.5px; margin: 8px 0 14px; display: block; overflow-x: auto; }
th, td { border: 1px solid #e2e2e2; padding: 3px 7px; text-align: left; vertical-align: top; white-space: nowrap; }
th { background: #f3f3f3; } tr:nth-child(even) td { background: #fbfbfb; }
td.wrap { white-space: normal; min-width: 260px; max-width: 520px; }
.real { color: #b34700; font-weight: 600; } .noise { color: #0063a0; font-weight: 600; } .top { font-weight: 700; }
.failed, .killed { color: #b00020; font-weight: 600; } .running, .pruned { color: #8a6d00; font-weight: 600; }
.reference { color: #666; font-style: italic; }
pre { background: #f4f4f4; padding: 8px 10px; overflow-x: auto; font-size: 12.5px; white-space: pre-wrap; word-break: break-all; }
nav { font-size: 13px; margin: 12px 0 0; } nav a { margin-right: 12px; color: #0063a0; }
"""

_TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ page.title }}</title>
<style>{{ style | safe }}</style></head>
<body><main>
<h1>{{ page.title }}</h1>
<dl class="facts">{% for key, value in page.facts %}<dt>{{ key }}</dt><dd>{{ value }}</dd>{% endfor %}</dl>
<nav>{% for s in page.sections %}<a href="#{{ s.id }}">{{ s.title }}</a>{% endfor %}</nav>
{% for s in page.sections %}
<section id="{{ s.id }}"><h2>{{ s.title }}</h2>
{% if s.lead %}<p class="lead">{{ s.lead }}</p>{% endif %}
{% for p in s.pictures %}<figure><img src="{{ p | data_uri }}" alt="{{ p.alt }}">
{% if p.caption %}<figcaption>{{ p.caption }}</figcaption>{% endif %}</figure>{% endfor %}
{% for t in s.tables %}<table class="{{ t.css }}"><thead><tr>{% for c in t.columns %}<th>{{ c }}</th>{% endfor %}</tr></thead>
<tbody>{% for row in t.rows %}<tr>{% for c in row %}
<td class="{{ c.css }}"{% if c.title %} title="{{ c.title }}"{% endif %}>{{ c.text }}</td>
{% endfor %}</tr>{% endfor %}</tbody></table>
{% endfor %}
{% for n in s.notes %}<p class="note">{{ n }}</p>{% endfor %}
{% for label, text in s.code %}<p class="note">{{ label }}</p><pre>{{ text }}</pre>{% endfor %}
</section>
{% endfor %}
</main></body></html>
"""


def data_uri(picture: Picture) -> str:
    """``data:<mime>;base64,...``: the picture inside the page."""
    return f"data:{picture.mime};base64," + base64.b64encode(picture.data).decode("ascii")


def to_html(page: Page) -> str:
    """The whole page as one HTML document."""
    import jinja2

    env = jinja2.Environment(autoescape=True, trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined)
    env.filters["data_uri"] = data_uri
    return env.from_string(_TEMPLATE).render(page=page, style=_STYLE)
