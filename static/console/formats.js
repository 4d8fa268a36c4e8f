/* The console's one format for each kind of value, for the values its pages update live: the
 * same rules as sync/console/formats.py (the server-rendered ones), so a figure reads the same
 * before and after a refresh.
 *   number(4140) "4,140"; a float below 10 keeps one decimal: "2.5"
 *   duration(0.454) "0.45 s", 2.3 s, 12 s, "2 min 05 s", "1 h 02 min"; ms below 1 s on request
 *   rate(9109.06) "9,109 rows/s"; percent(0.992) "99.2%", percent(1) "100%"
 *   when(iso) "2026-12-06 20:54:21" in the console's time zone (templates/admin/base_site.html
 *   names it once per page, in <meta name="console-time-zone">); ago(iso) "2 min 05 s ago".
 * Plain script (no build step): window.ConsoleFormats. */
(function () {
  "use strict";

  var EMPTY = "-";

  function finite(value) { return typeof value === "number" && isFinite(value); }

  function grouped(value) { return Math.round(value).toLocaleString("en-US"); }

  function number(value) {
    if (!finite(value)) { return EMPTY; }
    if (Math.abs(value) < 10 && value !== Math.round(value)) { return value.toFixed(1); }
    return grouped(value);
  }

  function twoDigits(value) { return (value < 10 ? "0" : "") + value; }

  /* Each band takes the value as it will be shown (9.96 s is "10 s", 59.6 s "1 min 00 s"). */
  function duration(seconds, milliseconds) {
    if (!finite(seconds)) { return EMPTY; }
    var negative = seconds < 0;
    var text;
    seconds = Math.abs(seconds);
    if (milliseconds && Math.round(seconds * 1000) < 1000) {
      text = Math.round(seconds * 1000) + " ms";
    } else if (seconds < 1 && Number(seconds.toPrecision(2)) < 1) {
      text = seconds ? String(Number(seconds.toPrecision(2))) + " s" : "0 s";
    } else if (Math.round(seconds * 10) / 10 < 10) {
      text = seconds.toFixed(1) + " s";
    } else if (Math.round(seconds) < 60) {
      text = Math.round(seconds) + " s";
    } else if (Math.round(seconds) < 3600) {
      var whole = Math.round(seconds);
      text = Math.floor(whole / 60) + " min " + twoDigits(whole % 60) + " s";
    } else {
      var minutes = Math.round(seconds / 60);
      text = grouped(Math.floor(minutes / 60)) + " h " + twoDigits(minutes % 60) + " min";
    }
    return negative ? "-" + text : text;
  }

  function rate(perSecond, unit) {
    if (!finite(perSecond)) { return EMPTY; }
    return number(perSecond) + " " + (unit || "rows") + "/s";
  }

  /* A fraction (0..1): "99.2%"; exactly 1 "100%", never rounded up to it. */
  function percent(fraction, decimals) {
    if (!finite(fraction)) { return EMPTY; }
    var places = decimals === undefined ? 1 : decimals;
    var value = fraction * 100;
    if (value >= 100) { return value === 100 ? "100%" : grouped(value) + "%"; }
    var scale = Math.pow(10, places);
    return (Math.floor(value * scale) / scale).toFixed(places) + "%";
  }

  function timeZone() {
    var meta = document.querySelector('meta[name="console-time-zone"]');
    return meta ? meta.content : "UTC";
  }

  var parts = null;

  function when(iso) {
    if (!iso) { return EMPTY; }
    var date = new Date(iso);
    if (isNaN(date.getTime())) { return EMPTY; }
    if (!parts) {
      parts = new Intl.DateTimeFormat("en-CA", {
        timeZone: timeZone(), hourCycle: "h23", year: "numeric", month: "2-digit",
        day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit" });
    }
    var found = {};
    parts.formatToParts(date).forEach(function (part) { found[part.type] = part.value; });
    return found.year + "-" + found.month + "-" + found.day + " " + found.hour + ":" +
      found.minute + ":" + found.second;
  }

  function ago(iso) {
    if (!iso) { return EMPTY; }
    var seconds = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
    if (Math.round(seconds) < 10) { return Math.round(seconds) + " s ago"; }
    return duration(seconds) + " ago";
  }

  /* The counts in a stored message, grouped (sync/console/formats.py counts_in_text). */
  var COUNT_IN_TEXT = /(^|[^\w.,:\/#-])(\d{4,})(?= (?:rows?|created|updated|unchanged|failed|flagged|new|gaps?|keys?|samples?|intents?|errors?|of|vs)\b)/g;

  function countsInText(text) {
    return String(text || "").replace(COUNT_IN_TEXT, function (match, before, digits) {
      return before + grouped(Number(digits));
    });
  }

  window.ConsoleFormats = { number: number, duration: duration, rate: rate, percent: percent,
    when: when, ago: ago, countsInText: countsInText, timeZone: timeZone, EMPTY: EMPTY };
})();
