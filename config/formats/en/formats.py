"""Django's own rendering of dates, times and numbers in the console (admin lists, read-only
fields, date hierarchies) in the console's one format (sync/console/formats.py):
``2026-12-06 20:54:21`` and ``4,140``. Read through ``FORMAT_MODULE_PATH`` for every English
locale; inputs keep Django's defaults (``DATE_INPUT_FORMATS``): a typed date still parses."""

DATETIME_FORMAT = "Y-m-d H:i:s"
DATE_FORMAT = "Y-m-d"
TIME_FORMAT = "H:i:s"
SHORT_DATETIME_FORMAT = "Y-m-d H:i"
SHORT_DATE_FORMAT = "Y-m-d"
YEAR_MONTH_FORMAT = "Y-m"
MONTH_DAY_FORMAT = "m-d"
DECIMAL_SEPARATOR = "."
THOUSAND_SEPARATOR = ","
NUMBER_GROUPING = 3
