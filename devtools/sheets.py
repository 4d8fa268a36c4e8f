"""Made-up spreadsheets of buyers and sellers, for the demo, the tests and the benchmarks.

``incident_buyers`` writes the incident sheet: 4,140 buyers of which exactly 356 carry one
value longer than 50 characters (what a ``VARCHAR(50)`` column silently cut short); every
other value of every row fits in 50. ``buyer_rows``/``seller_rows`` make sheets of any size,
the same for the same seed. Run as a script to write files::

    python -m devtools.sheets buyers out.csv --rows 4140 --long 356
    python -m devtools.sheets sellers out.xlsx --rows 500
"""

from __future__ import annotations

import argparse
import csv
import random
import sys
from collections.abc import Iterator
from pathlib import Path

BUYER_HEADERS = [
    "Buyer Number",
    "Name",
    "Email",
    "Phone",
    "Address",
    "Desired Area",
    "Property Type",
    "Budget",
    "Status",
    "Inquiry Source",
    "Inquiry Date",
    "Notes",
]
# The Buyer model's field behind each of BUYER_HEADERS, in the same order (the benches and the
# incident test map the sheet's columns with it).
BUYER_FIELDS = [
    "buyer_number",
    "name",
    "email",
    "phone",
    "address",
    "desired_area",
    "property_type",
    "budget",
    "status",
    "inquiry_source",
    "inquiry_date",
    "notes",
]
SELLER_HEADERS = [
    "Seller Number",
    "Name",
    "Email",
    "Phone",
    "Address",
    "Status",
    "Contract Date",
    "Notes",
    "Property Type",
    "Property Address",
    "Land Area",
    "Building Area",
    "Asking Price",
]
INCIDENT_ROWS, INCIDENT_LONG, LIMIT = 4140, 356, 50
# Columns whose values ran long in the incident (free text, addresses, long e-mails).
LONG_COLUMNS = ["Address", "Desired Area", "Notes", "Inquiry Source", "Email", "Name"]

FAMILY = [
    "Sato",
    "Suzuki",
    "Takahashi",
    "Tanaka",
    "Watanabe",
    "Ito",
    "Yamamoto",
    "Nakamura",
    "Kobayashi",
    "Kato",
    "Yoshida",
    "Yamada",
    "Sasaki",
    "Matsumoto",
    "Inoue",
    "Kimura",
]
GIVEN = [
    "Haruto",
    "Yui",
    "Sota",
    "Hina",
    "Ren",
    "Aoi",
    "Minato",
    "Mei",
    "Yuto",
    "Sakura",
    "Kaito",
    "Rin",
    "Hiroshi",
    "Akiko",
    "Kenji",
    "Naomi",
]
AREAS = [
    "Shibuya",
    "Meguro",
    "Setagaya",
    "Nakano",
    "Suginami",
    "Kichijoji",
    "Chofu",
    "Fuchu",
    "Tachikawa",
    "Machida",
    "Kawasaki",
    "Yokohama Aoba",
    "大田区",
    "世田谷区",
]
TYPES = ["house", "apartment", "land", "condo", "townhouse"]
STATUSES = ["new", "contacted", "viewing", "negotiating", "closed", "on hold"]
CHANNELS = ["website", "walk-in", "referral", "portal", "phone", "flyer"]
NOTES = [
    "prefers south-facing",
    "needs parking",
    "near station",
    "school district",
    "pet friendly",
    "",
    "",
    "call after 6pm",
    "quiet street",
    "renovation ok",
]
LONG_TEXT = (
    "within a fifteen minute walk of a station on the Tokyu Toyoko line, ideally "
    "near a park and an elementary school, south-facing, with parking for two cars, "
    "駅徒歩十五分以内、南向き、駐車場二台分、小学校と公園の近く"
)


def _fit(text: str) -> str:
    return text[:LIMIT]


def _buyer(rng: random.Random, n: int) -> list[str]:
    family, given = rng.choice(FAMILY), rng.choice(GIVEN)
    return [
        f"B-{n:05d}",
        f"{family} {given}",
        f"{given.lower()}.{family.lower()}{n}@example.jp",
        f"090-{rng.randrange(1000, 9999)}-{rng.randrange(1000, 9999)}",
        _fit(f"{rng.randrange(1, 30)}-{rng.randrange(1, 20)} {rng.choice(AREAS)}, Tokyo"),
        rng.choice(AREAS),
        rng.choice(TYPES),
        str(rng.randrange(20, 200) * 1_000_000),
        rng.choice(STATUSES),
        rng.choice(CHANNELS),
        f"20{rng.randrange(20, 26)}-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}",
        rng.choice(NOTES),
    ]


def _long_value(rng: random.Random, header: str, row: list[str]) -> str:
    """A realistic value of 51 to 160 characters for this column."""
    length = rng.randrange(LIMIT + 1, 161)
    if header == "Email":
        local = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz.") for _ in range(length))
        return (local.strip(".") + "x")[: length - len("@example.co.jp")] + "@example.co.jp"
    if header == "Name":
        return (row[1] + " " + " ".join(rng.choice(GIVEN) for _ in range(40)))[:length]
    start = rng.randrange(0, 40)
    return (LONG_TEXT[start:] + " " + LONG_TEXT)[:length]


def buyer_rows(
    count: int = INCIDENT_ROWS,
    long: int = INCIDENT_LONG,
    *,
    seed: int = 4140,
) -> Iterator[list[str]]:
    """``count`` buyers; ``long`` of them (spread at random) carry one value over 50 chars."""
    rng = random.Random(seed)  # noqa: S311 - made-up data, not secrets
    spread = random.Random(seed + 1)  # noqa: S311 - made-up data, not secrets
    long_at = set(spread.sample(range(count), long)) if long else set()
    for i in range(count):
        row = _buyer(rng, i + 1)
        if i in long_at:
            header = LONG_COLUMNS[i % len(LONG_COLUMNS)]
            position = BUYER_HEADERS.index(header)
            row[position] = _long_value(rng, header, row)
        yield row


def seller_rows(count: int, *, seed: int = 2002) -> Iterator[list[str]]:
    rng = random.Random(seed)  # noqa: S311 - made-up data, not secrets
    for n in range(1, count + 1):
        family, given = rng.choice(FAMILY), rng.choice(GIVEN)
        yield [
            f"{rng.choice('ABCDEFGH')}{rng.choice('KLMNPRST')}{n:05d}",
            f"{family} {given}",
            f"{given.lower()}{n}@example.jp",
            f"03-{rng.randrange(1000, 9999)}-{rng.randrange(1000, 9999)}",
            f"{rng.randrange(1, 30)}-{rng.randrange(1, 20)} {rng.choice(AREAS)}",
            rng.choice(["listing", "under contract", "sold", "withdrawn"]),
            f"20{rng.randrange(20, 26)}-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}",
            rng.choice(NOTES),
            rng.choice(TYPES),
            f"{rng.randrange(1, 30)}-{rng.randrange(1, 20)} {rng.choice(AREAS)}",
            f"{rng.randrange(50, 400)}.{rng.randrange(0, 100):02d}",
            f"{rng.randrange(30, 250)}.{rng.randrange(0, 100):02d}",
            str(rng.randrange(10, 300) * 1_000_000),
        ]


def write_csv(path: Path | str, headers: list[str], rows) -> Path:
    path = Path(path)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(headers)
        writer.writerows(rows)
    return path


def write_xlsx(path: Path | str, headers: list[str], rows, title: str = "Sheet1") -> Path:
    import openpyxl

    path = Path(path)
    book = openpyxl.Workbook(write_only=True)
    sheet = book.create_sheet(title)
    sheet.append(headers)
    for row in rows:
        sheet.append(row)
    book.save(path)
    return path


def write(path: Path | str, headers: list[str], rows) -> Path:
    writer = write_xlsx if str(path).endswith(".xlsx") else write_csv
    return writer(path, headers, rows)


def incident_buyers(path: Path | str) -> Path:
    """The incident sheet: 4,140 buyers, 356 with a value over 50 characters."""
    return write(path, BUYER_HEADERS, buyer_rows())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("kind", choices=["buyers", "sellers"])
    parser.add_argument("path", help="a .csv or .xlsx file to write")
    parser.add_argument("--rows", type=int, default=INCIDENT_ROWS)
    parser.add_argument(
        "--long", type=int, default=INCIDENT_LONG, help="buyers carrying a value over 50 characters"
    )
    args = parser.parse_args(argv)
    if args.kind == "buyers":
        write(args.path, BUYER_HEADERS, buyer_rows(args.rows, min(args.long, args.rows)))
    else:
        write(args.path, SELLER_HEADERS, seller_rows(args.rows))
    sys.stderr.write(f"wrote {args.rows} {args.kind} to {args.path}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
