/* The console's live parts, in plain script (no build step):
 * - the dashboard (#console-dashboard) polls GET /api/sync/dashboard and refreshes the service
 *   checks, the cache retry queue, the sources and the open alerts;
 * - the sync page (#console-sync) polls GET /api/sync/progress/<run> while the run is active
 *   and moves the progress bar, then shows the summary.
 * Every value goes into the page as text (textContent), never as markup. */
(function () {
  "use strict";

  var F = window.ConsoleFormats;  // static/console/formats.js: the server's formats

  function $(selector, root) { return (root || document).querySelector(selector); }

  function text(selector, value, root) {
    var node = $(selector, root);
    if (node) { node.textContent = value; }
    return node;
  }

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (key) { node.setAttribute(key, attrs[key]); });
    (children || []).forEach(function (child) {
      node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
    });
    return node;
  }

  function num(value) { return F.number(value === undefined ? null : value); }

  function poll(url, interval, onData, onError) {
    var timer = null;
    function tick() {
      fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (response) {
          if (!response.ok) { throw new Error(response.status === 401 || response.status === 403
            ? "session expired: reload the page" : "HTTP " + response.status); }
          return response.json();
        })
        .then(function (data) { if (onData(data) !== false) { timer = setTimeout(tick, interval); } })
        .catch(function (error) { onError(error); timer = setTimeout(tick, interval * 3); });
    }
    tick();
    return function stop() { clearTimeout(timer); };
  }

  /* A run's row counts as the server renders them: only the non-zero ones, each unbroken. */
  function outcome(cell, run) {
    if (!cell) { return; }
    cell.textContent = "";
    var parts = [["created", "new"], ["updated", "updated"], ["unchanged", "unchanged"], ["failed", "failed"]]
      .filter(function (pair) { return run[pair[0]]; });
    parts.forEach(function (pair) {
      cell.appendChild(el("span", { "class": pair[0] === "failed" ? "part bad" : "part" },
        [F.number(run[pair[0]]) + " " + pair[1]]));
      cell.appendChild(document.createTextNode(" "));
    });
    if (!parts.length) { cell.appendChild(el("span", { "class": "quiet" }, ["no rows"])); }
  }

  /* ------------------------------------------------------------------ dashboard */

  function dashboard(root) {
    var csrf = $("input[name=csrfmiddlewaretoken]", root).value;
    var canOperate = root.dataset.canOperate === "1";
    var live = $("#live-state");

    function health(checks) {
      (checks || []).forEach(function (check) {
        var item = root.querySelector('[data-check="' + check.name + '"]');
        if (!item) { return; }
        $(".dot", item).className = "dot " + (check.ok ? "dot-ok" : "dot-bad");
        var detail = $(".detail", item);
        detail.textContent = check.ok ? "OK · " + F.duration(check.ms / 1000, true) : check.error;
        detail.title = detail.textContent;
        detail.className = "detail " + (check.ok ? "quiet" : "bad");
      });
    }

    function queue(q) {
      text("#queue-pending", F.number(q.pending));
      text("#queue-oldest", q.pending ? F.duration(q.oldest_seconds) : "none");
      var dead = text("#queue-dead", F.number(q.dead));
      dead.className = q.dead ? "bad" : "";
    }

    function pill(status, label) { return el("span", { "class": "pill status-" + status }, [label || status]); }

    function sources(rows) {
      rows.forEach(function (s) {
        var row = root.querySelector('tr[data-source="' + s.source + '"]');
        if (!row) { return; }
        var last = $('[data-field="last"]', row);
        last.textContent = "";
        if (s.active_run) { last.appendChild(pill("running", s.active_run.status + " " + s.active_run.percent + "%")); last.appendChild(document.createTextNode(" ")); }
        if (s.last_run) {
          last.appendChild(pill(s.last_run.status));
          last.appendChild(document.createTextNode(" "));
          last.appendChild(el("span", { "class": "quiet" }, [F.ago(s.last_run.finished_at)]));
        } else if (!s.active_run) { last.appendChild(el("span", { "class": "quiet" }, ["never"])); }
        var r = s.last_run;
        var rowsCell = $('[data-field="rows"]', row);
        rowsCell.textContent = "";
        if (r) { outcome(rowsCell, r); }
        text('[data-field="rate24"]', F.percent(s.success_rate_24h), row);
        text('[data-field="rate7"]', F.percent(s.success_rate_7d), row);
        var gaps = $('[data-field="gaps"] span', row);
        gaps.textContent = F.number(s.gaps);
        gaps.className = s.gaps ? "bad" : "";
      });
    }

    var shownAlerts = null;

    function alerts(list, open) {
      var count = text("#alerts-open", F.number(open));
      count.className = "figure " + (open ? "bad" : "good");
      // Rebuilt only when the alerts changed: a button under the pointer stays put.
      var signature = JSON.stringify(list.map(function (a) { return [a.id, a.count, a.last_seen_at]; }));
      if (signature === shownAlerts) { return; }
      shownAlerts = signature;
      var body = $("#alerts tbody");
      body.textContent = "";
      if (!list.length) {
        body.appendChild(el("tr", { "class": "empty" }, [el("td", { colspan: "7", "class": "quiet" }, ["No open alerts."])]));
        return;
      }
      list.forEach(function (a) {
        var action = el("td");
        if (canOperate) {
          action.appendChild(el("form", { method: "post", action: root.dataset.ackUrl.replace("/0/", "/" + a.id + "/") }, [
            el("input", { type: "hidden", name: "csrfmiddlewaretoken", value: csrf }),
            el("input", { type: "hidden", name: "next", value: location.pathname }),
            el("button", { type: "submit", "class": "button ack" }, ["Acknowledge"])]));
        }
        body.appendChild(el("tr", { "data-alert": String(a.id) }, [
          el("td", {}, [el("span", { "class": "pill sev-" + a.severity }, [a.severity])]),
          el("td", { "class": "nowrap" }, [a.type_label || a.type]), el("td", {}, [a.source]),
          el("td", { "class": "message" }, [F.countsInText(a.message)]),
          el("td", { "class": "num" }, ["×" + F.number(a.count)]),
          el("td", { "class": "nowrap" }, [F.ago(a.last_seen_at)]), action]));
      });
    }

    /* The sampler's live consistency (figure, windows, per-minute trend) and the processes'
     * heartbeats; both absent from an older server's answer. */
    /* The figure big only while it is current; else "unknown" or "stale" big, with why,
     * and the last figure in the small print (sync/console/dashboard.py). */
    function liveConsistency(l) {
      if (!l) { return; }
      var current = !l.freshness || l.freshness === "current";
      var figure = text("#live-consistency-figure", current ? l.headline : l.freshness);
      if (figure) { figure.className = "figure " + (current ? l.state : l.freshness); }
      var note = text("#live-consistency-note", current ? "" : l.freshness_note);
      if (note) { note.hidden = current; note.className = "freshness-note " + (current ? "" : l.freshness); }
      var ten = l.windows[1];
      var line = ten.samples ? (current ? "" : "last figure " + l.headline + " · ") +
        "sampled writes consistent in Redis" + (current ? ", live" : "") + " · " + F.number(ten.samples) + " samples" +
        (ten.nines !== null ? " · " + ten.nines + " nines" : "")
        : "no samples in the last " + F.duration(l.over_seconds) + ": is a worker running the sampler?";
      if (l.unreachable) { line += " · " + F.number(l.unreachable) + " not checkable: cache Redis unreachable"; }
      var windows = $("#live-consistency-windows");
      if (windows) {
        windows.textContent = "";
        windows.hidden = !ten.samples;
        l.windows.forEach(function (w) {
          windows.appendChild(el("span", { "class": "quiet" }, ["within " + w.seconds + " s"]));
          windows.appendChild(el("span", {}, [w.percent]));
        });
      }
      text("#live-consistency-text", line);
      var svg = $("#live-consistency-trend");
      if (!svg) { return; }
      svg.textContent = "";
      // NOTE: hidden as an attribute (the Content-Security-Policy allows no style attribute).
      if (l.bars.length) { svg.removeAttribute("hidden"); } else { svg.setAttribute("hidden", ""); }
      l.bars.forEach(function (b) {
        var rect = document.createElementNS("http://www.w3.org/2000/svg", "rect");
        [["class", b["class"]], ["x", b.x], ["y", b.y], ["width", 6], ["height", b.height]].forEach(
          function (pair) { rect.setAttribute(pair[0], String(pair[1])); });
        var title = document.createElementNS("http://www.w3.org/2000/svg", "title");
        title.textContent = b.title;
        rect.appendChild(title);
        svg.appendChild(rect);
      });
    }

    function processes(list) {
      var facts = $("#processes");
      if (!facts || !list) { return; }
      facts.textContent = "";
      list.forEach(function (p) {
        facts.appendChild(el("dt", {}, [p.kind + " " + p.node]));
        facts.appendChild(el("dd", { "class": p.alive ? "good" : "bad" }, [
          (p.alive ? "alive" : "silent") + " · " + F.number(p.restarts) + " restart" + (p.restarts === 1 ? "" : "s")]));
      });
    }

    poll(root.dataset.url, Number(root.dataset.interval), function (data) {
      health(data.health);
      queue(data.queue);
      liveConsistency(data.live_consistency);
      processes(data.processes);
      sources(data.sources);
      alerts(data.alerts, data.open_alerts);
      live.classList.remove("stale");
      text("#live-time", "updated " + F.when(data.generated_at));
      if (data.consistency) {
        text("#consistency-age", F.ago(data.consistency.checked_at) +
          (data.consistency.repaired ? ", " + F.number(data.consistency.repaired) + " repaired" : ""));
      }
    }, function (error) {
      live.classList.add("stale");
      text("#live-time", String(error.message || error));
    });
  }

  /* ------------------------------------------------------------------ sync page */

  var MESSAGE_LEVELS = { pending: "info", running: "info", succeeded: "success", partial: "warning",
    failed: "error", refused: "error", cancelled: "warning" };

  /* A run's state in a sentence, for the message that announced it ("queued…"). */
  function runSentence(run, upload) {
    var head = "Run " + run.id + " of " + run.source + (upload ? " (upload " + upload + ")" : "") + ": ";
    if (!run.finished) {
      return head + (run.cancel_requested ? "cancelling" : "running") + (run.phase ? ", phase " + run.phase : "") +
        ", " + run.percent + "% (" + F.number(run.rows_done) + " of " + F.number(run.rows_total) + " rows).";
    }
    var counts = [["created", "new"], ["updated", "updated"], ["unchanged", "unchanged"], ["failed", "failed"]]
      .filter(function (pair) { return run[pair[0]]; })
      .map(function (pair) { return F.number(run[pair[0]]) + " " + pair[1]; });
    return head + run.status + (counts.length ? ", " + counts.join(" · ") : "") +
      (run.duration_seconds === null ? "" : ", in " + F.duration(run.duration_seconds)) + ". ";
  }

  /* The messages about this run (tagged "run-<id>" by the views) say what it is doing now. */
  function runMessages(root, run) {
    if (run.status === "pending") { return; }  // "queued: a worker starts it shortly" is true
    Array.prototype.forEach.call(document.querySelectorAll(".messagelist li.run-" + run.id), function (item) {
      var upload = /(?:^| )upload-(\d+)(?: |$)/.exec(item.className);
      item.textContent = runSentence(run, upload ? upload[1] : null);
      if (run.finished && root.dataset.runUrl) {
        item.appendChild(el("a", { href: root.dataset.runUrl.replace(/\/0\/change\/$/, "/" + run.id + "/change/") },
          ["Open the run's page"]));
      }
      item.className = "console-run-message run-" + run.id + (upload ? " upload-" + upload[1] : "") +
        " " + (MESSAGE_LEVELS[run.status] || "info");
    });
  }

  function syncPage(root) {
    if (!root.dataset.run) { return; }
    var url = root.dataset.progressUrl.replace(/0$/, root.dataset.run);

    function show(run) {
      runMessages(root, run);
      var status = $("#run-status");
      status.textContent = run.status + (run.cancel_requested && !run.finished ? " (cancelling)" : "");
      status.className = "pill status-" + run.status;
      var bar = $("#run-progress");
      bar.setAttribute("aria-valuenow", run.percent);
      var fill = $(".progress-bar", bar);
      fill.style.width = run.percent + "%";
      fill.className = "progress-bar status-" + run.status;
      text("#run-percent", run.percent + "%");
      text("#run-rows", F.number(run.rows_done) + " / " + F.number(run.rows_total));
      text("#run-phase", run.phase || (run.finished ? "finished" : "–"));
      text("#run-duration", run.duration_seconds === null ? "" : F.duration(run.duration_seconds));
      var row = $("#run-row");
      if (row) {
        text('[data-col="rows_done"]', F.number(run.rows_done), row);
        var gapsCell = text('[data-col="gaps"]', num(run.gaps), row);
        if (gapsCell) { gapsCell.className = run.gaps ? "bad" : ""; }
        outcome($('[data-col="outcome"]', row), run);
        text('[data-col="duration_seconds"]', run.duration_seconds === null ? "" : F.duration(run.duration_seconds), row);
        var pillCell = text('[data-col="status"]', run.status, row);
        pillCell.className = "pill status-" + run.status;
      }
      if (!run.finished) { return true; }
      ["created", "updated", "unchanged", "failed"].forEach(function (name) {
        text("#sum-" + name, F.number(run[name]));
      });
      $("#sum-failed-box").className = run.failed ? "failed" : "";
      text("#sum-duration", run.duration_seconds === null ? "–" : F.duration(run.duration_seconds));
      text("#sum-gaps", num(run.gaps));
      text("#sum-message", F.countsInText(run.message));
      $("#run-summary").hidden = false;
      var cancel = $("#cancel-form");
      if (cancel) { cancel.hidden = true; }
      var start = $("#start-sync");
      if (start) { start.disabled = false; start.removeAttribute("title"); }
      root.dataset.finished = "1";
      return false;
    }

    // NOTE: a run that had finished when the page was rendered is fetched once too: the
    // "queued" message of a run that took a second must not outlive it.
    poll(url, Number(root.dataset.interval), function (data) { return show(data.run); },
      function (error) { text("#run-phase", String(error.message || error)); });
  }

  document.addEventListener("DOMContentLoaded", function () {
    // The bars' widths come as data (the Content-Security-Policy allows no style attribute).
    Array.prototype.forEach.call(document.querySelectorAll(".progress-bar[data-percent]"),
      function (bar) { bar.style.width = bar.dataset.percent + "%"; });
    var root = document.getElementById("console-dashboard");
    if (root) { dashboard(root); }
    root = document.getElementById("console-sync");
    if (root) { syncPage(root); }
  });
})();
