"""What the console walk (tests/console/test_walk.py) asserts on each page it opens.

Each check takes what the browser measured on a page and returns findings (short sentences,
at most a few examples each); an empty list is a pass. The checks read *visible* text only
(text nodes whose element is rendered), never inputs, ``<code>`` or scripts.

* ``overflow``: the content area (``#content``) is not wider than its box, no element of it
  reaches past the viewport, and no scroll box inside it hides columns (a table in an
  ``overflow-x: auto`` wrapper wider than the wrapper, a header cut by ``text-overflow``).
* ``raw_json``: no JSON object or Python dict text (``{"gaps": 0}``, ``"phase": …``).
* ``formats``: one number, time and duration format (docs/console.md): integers of
  four or more digits carry thousands separators; times read ``2026-12-06 20:54:21`` (no
  ``Dec. 6, 2026``, ``8:55 p.m.``, ``8:55:14 PM``, ISO ``T``, offsets, fractions of a second,
  a clock time without its date); durations ``0.45 s`` / ``12 s`` / ``2 min 05 s`` /
  ``1 h 02 min`` / ``45 ms`` (no ``0.454 s``, ``3 seconds``, ``0:00:03``, ``2m 5s``); no float
  of three or more decimals; percentages without a space; a page with times names the time
  zone, once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from django.conf import settings

EXAMPLES = 4  # examples quoted per finding

# Runs in the page: measures the content area, and lists its visible text nodes with what
# tells an identifier from a figure (the link around it, the column it is in).
MEASURE_JS = r"""
() => {
  const vw = document.documentElement.clientWidth;
  const content = document.querySelector('#content') || document.querySelector('#main')
                  || document.body;
  const name = el => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '')
                     + (el.classList.length ? '.' + [...el.classList].slice(0, 3).join('.') : '');
  const shown = el => el.checkVisibility ? el.checkVisibility({visibilityProperty: true})
                                         : el.offsetParent !== null;
  const wide = [], clipped = [];
  for (const el of content.querySelectorAll('*')) {
    const r = el.getBoundingClientRect();
    if (r.width === 0 || r.height === 0 || !shown(el)) continue;
    if ((r.right > vw + 1 || r.left < -1) && !wide.some(w => w.el.contains(el))) {
      wide.push({el, text: `${name(el)} spans ${Math.round(r.left)}..${Math.round(r.right)} px`});
    }
    if (['TEXTAREA', 'INPUT', 'SELECT'].includes(el.tagName) || el.clientWidth <= 2
        || el.closest('.visually-hidden')) continue;  // inputs scroll; screen-reader text
    const ox = getComputedStyle(el).overflowX;
    if (ox !== 'visible' && el.scrollWidth > el.clientWidth + 1) {
      const text = (el.innerText || '').trim().slice(0, 40).replace(/\s+/g, ' ');
      clipped.push(`${name(el)} (overflow-x ${ox}) holds ${el.scrollWidth} px in `
                   + `${el.clientWidth} px${text ? ': "' + text + '"' : ''}`);
    }
  }
  const skip = 'script,style,textarea,select,option,code,kbd,noscript,template,input';
  const texts = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const text = node.nodeValue.trim();
    const parent = node.parentElement;
    if (!text || !parent || parent.closest(skip) || !shown(parent)) continue;
    const link = parent.closest('a');
    const field = parent.closest('[class*="field-"]');
    const td = parent.closest('td, th');
    const table = td ? td.closest('table') : null;
    const head = table && td.cellIndex >= 0
      ? table.querySelector(`thead th:nth-child(${td.cellIndex + 1})`) : null;
    texts.push({text, href: link ? link.getAttribute('href') || '' : '',
                column: (field ? field.className : '') + ' '
                        + (head && head !== td ? head.innerText.trim() : '')});
  }
  const icon = document.querySelector('link[rel~="icon"]');
  return {vw, scrollWidth: document.documentElement.scrollWidth,
          contentScroll: content.scrollWidth, contentClient: content.clientWidth,
          content: name(content), wide: wide.slice(0, 6).map(w => w.text),
          clipped: clipped.slice(0, 6), texts, body: document.body.innerText,
          icon: icon ? icon.href : null};
}
"""


@dataclass
class Measure:
    vw: int
    scrollWidth: int  # noqa: N815 (the browser's names)
    contentScroll: int  # noqa: N815
    contentClient: int  # noqa: N815
    content: str
    wide: list[str]
    clipped: list[str]
    texts: list[dict]
    body: str
    icon: str | None = None
    extra: dict = field(default_factory=dict)


def overflow(m: Measure) -> list[str]:
    found = []
    if m.contentScroll > m.contentClient + 1:
        found.append(
            f"{m.content} scrolls sideways: {m.contentScroll} px of content in {m.contentClient} px"
        )
    if m.scrollWidth > m.vw + 1:
        found.append(f"the page is {m.scrollWidth} px wide in a {m.vw} px viewport")
    if m.wide:
        found.append("wider than the viewport: " + "; ".join(m.wide[:EXAMPLES]))
    if m.clipped:
        found.append("clipped (hidden columns or cut text): " + "; ".join(m.clipped[:EXAMPLES]))
    return found


RAW_JSON = re.compile(
    r"""\{\s*["'][^"'\n]{1,60}["']\s*:|\[\s*\{\s*["']"""
    r"""|"[\w .-]{1,40}"\s*:\s*[-\d\[{"tfn]"""
)


def raw_json(m: Measure) -> list[str]:
    hits = _examples(RAW_JSON, m.body)
    return [f"raw JSON / dict text: {hits}"] if hits else []


# An integer of four or more digits standing alone: not part of a key (B-00123, PRT-00001,
# CA90001), a date, a time, an address, a version tag (v1234), a URL or a decimal's tail.
BARE_NUMBER = re.compile(r"(?<![\w.,:/#+=\-\u2212*])(\d{4,})(?:\.\d+)?(?![\w:/\-*]|[.,]\d)")
# Columns whose values are identifiers, not figures.
KEY_COLUMN = re.compile(
    r"\bfield-(?:id|pk|object_pk|object_id|natural_key|key|sku|\w+_number"
    r"|\w+_id|ip|path)\b|(?:^|\s)(?:ID|#|Row|Key|Line|Run|Version)$",
    re.IGNORECASE,
)
# Words that make the number after them an identifier: "run 1234", "row 1352", "version 1473".
# ("rows 202, 1352": a list of sheet rows; "1352 rows" is a count and is flagged.)
ID_WORDS = {
    "version",
    "run",
    "row",
    "rows",
    "line",
    "lines",
    "id",
    "pk",
    "intent",
    "alert",
    "pid",
    "port",
    "upload",
    "config",
}


def key_word(words: set[str]) -> re.Pattern:
    """Numbers right after these words (a model's name, ``catalog.part``, ``run``) are ids."""
    names = "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))
    return re.compile(rf"(?:\b(?:{names})|#):?(?:\s+\d+,)*\s*$", re.IGNORECASE)


KEY_WORD = key_word(ID_WORDS)

TIME_FORMS = [
    (
        re.compile(
            r"\b(?:Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec)\.? \d{1,2}\b"
            r"|\b(?:January|February|March|April|May|June|July|August|September|October"
            r"|November|December) \d{1,2}\b"
        ),
        "a month-name date",
    ),
    (re.compile(r"\b\d{1,2}(?::\d{2}){1,2}\s?[AaPp]\.?[Mm]\b\.?|\b[ap]\.m\."), "a 12-hour clock"),
    (re.compile(r"\b(?:midnight|noon)\b"), "Django's midnight/noon"),
    (re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}"), "an ISO time with T"),
    (re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}(?!:\d{2})"), "a time without seconds"),
    (
        re.compile(r"\d:\d{2}:\d{2}(?:\.\d+|\s?[+-]\d{2}:?\d{2})"),
        "a time with fractions or an offset",
    ),
    (
        re.compile(r"(?<!\d{4}-\d{2}-\d{2} )(?<![\d:])\d{1,2}:\d{2}:\d{2}(?![\d.])"),
        "a clock time (or H:MM:SS duration) without its date",
    ),
]
DURATION_FORMS = [
    (
        re.compile(r"(?<![\w.])\d+(?:\.\d+)?\s?(?:secs?|seconds?|sec\.)(?!\w)"),
        "seconds spelled out (use '12 s')",
    ),
    (re.compile(r"(?<![\w.])\d+(?:\.\d+)?(?:s|ms)\b"), "a unit without its space ('0.45 s')"),
    (re.compile(r"(?<![\w.])\d+\.\d+\s?ms\b"), "milliseconds with decimals"),
    (
        re.compile(r"(?<![\w.])\d+m\s?\d+s\b|(?<![\w.])\d+\.\d+\s?min\b"),
        "another duration form ('2 min 05 s')",
    ),
    (
        re.compile(r"(?<![\w.,])[1-9][\d,]*\d\.\d+\s?s\b"),
        "a duration of 10 s or more with decimals ('12 s')",
    ),
    (re.compile(r"\d\s%"), "a space before %"),
    (re.compile(r"(?<![\w.])\d+\.(?:\d{2}|\d{4,})%"), "a percentage with 2 or 4+ decimals"),
]
YEAR = range(1990, 2100)
SECONDS = re.compile(r"(?<![\w.,:])(\d[\d,]*(?:\.\d+)?)\s?s\b")
TIME = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}")
# A decimal of three or more places is unrounded, unless it is a duration of two significant
# digits below 0.1 s (``0.045 s``) or a consistency figure's nines (``99.991%``).
DECIMALS = re.compile(r"(?<![\w.:,])(\d[\d,]*)\.(\d{3,})(?!\d)(\s?s\b|%)?")


def _unrounded(match: re.Match) -> bool:
    whole, places, unit = match.groups()
    if unit and unit.strip() == "s" and whole == "0" and len(places.lstrip("0")) <= 2:
        return False
    return not (unit == "%" and len(places) == 3)


def formats(m: Measure, key_words: re.Pattern = KEY_WORD) -> list[str]:
    bare: list[str] = []
    wrong: dict[str, list[str]] = {}
    for node in m.texts:
        text = node["text"]
        if not KEY_COLUMN.search(node["column"]):
            link_numbers = set(re.findall(r"\d+", node["href"]))
            for match in BARE_NUMBER.finditer(text):
                number = match.group(1)
                if (
                    number in link_numbers
                    or (len(number) == 4 and int(number) in YEAR)
                    or key_words.search(text[: match.start()])
                ):
                    continue
                bare.append(_around(text, match))
        for match in SECONDS.finditer(text):
            if float(match.group(1).replace(",", "")) > 60:
                wrong.setdefault("a duration over a minute in seconds ('2 min 05 s')", []).append(
                    _around(text, match)
                )
        for match in DECIMALS.finditer(text):
            if _unrounded(match):
                wrong.setdefault("an unrounded number (3+ decimals)", []).append(
                    _around(text, match)
                )
        for pattern, what in TIME_FORMS + DURATION_FORMS:
            for match in pattern.finditer(text):
                wrong.setdefault(what, []).append(_around(text, match))
    found = []
    if bare:
        found.append(f"numbers without thousands separators: {_unique(bare)}")
    found += [f"{what}: {_unique(examples)}" for what, examples in wrong.items()]
    zone = settings.TIME_ZONE
    zones = len(re.findall(rf"(?<!\w){re.escape(zone)}(?!\w)", m.body))
    if zones > 1:
        found.append(f"the time zone is named {zones} times (once per page, in the header)")
    elif zones == 0 and TIME.search(m.body):
        found.append(f"times without the time zone named on the page ({zone})")
    return found


def _around(text: str, match: re.Match) -> str:
    return text[max(0, match.start() - 20) : match.end() + 12].replace("\n", " ")


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))[:EXAMPLES]


def _examples(pattern: re.Pattern, text: str) -> list[str]:
    return _unique(
        [
            text[max(0, m.start() - 25) : m.end() + 25].replace("\n", " ")
            for m in pattern.finditer(text)
        ]
    )
