/* The console's live parts, in plain script (no build step):
 * - the dashboard (#console-dashboard) polls GET /api/sync/dashboard and refreshes the service
 *   checks, the cache retry queue, the sources and the open alerts;
 * - the sync page (#console-sync) polls GET /api/sync/progress/<run> while the run is active
 *   and moves the progress bar, then shows the summary.
 * Every value goes into the page as text (textContent), never as markup. */
(function () {
  "use strict";

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

  function ago(iso) {
    if (!iso) { return ""; }
    var seconds = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
    return duration(seconds) + " ago";
  }

  function duration(seconds) {
    if (seconds < 60) { return Math.round(seconds) + " s"; }
    if (seconds < 3600) { return Math.round(seconds / 60) + " min"; }
    if (seconds < 86400) { return (seconds / 3600).toFixed(1) + " h"; }
    return (seconds / 86400).toFixed(1) + " d";
  }

  function rate(value) { return value === null || value === undefined ? "–" : Math.round(value * 100) + "%"; }

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
        detail.textContent = check.ok ? "OK · " + Math.round(check.ms) + " ms" : check.error;
        detail.title = detail.textContent;
        detail.className = "detail " + (check.ok ? "quiet" : "bad");
      });
    }

    function queue(q) {
      text("#queue-pending", q.pending.toLocaleString());
      text("#queue-oldest", q.pending ? duration(q.oldest_seconds) : "none");
      var dead = text("#queue-dead", q.dead.toLocaleString());
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
          last.appendChild(el("span", { "class": "quiet" }, [ago(s.last_run.finished_at)]));
        } else if (!s.active_run) { last.appendChild(el("span", { "class": "quiet" }, ["never"])); }
        var r = s.last_run;
        var rowsCell = $('[data-field="rows"]', row);
        rowsCell.textContent = "";
        if (r) {
          rowsCell.appendChild(document.createTextNode(r.created + " new · " + r.updated + " upd · " + r.unchanged + " same · "));
          rowsCell.appendChild(el("span", { "class": r.failed ? "bad" : "" }, [r.failed + " failed"]));
        }
        text('[data-field="rate24"]', rate(s.success_rate_24h), row);
        text('[data-field="rate7"]', rate(s.success_rate_7d), row);
        var gaps = $('[data-field="gaps"] span', row);
        gaps.textContent = s.gaps === null ? "–" : s.gaps;
        gaps.className = s.gaps ? "bad" : "";
      });
    }

    var shownAlerts = null;

    function alerts(list, open) {
      var count = text("#alerts-open", open);
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
          el("td", {}, [a.type]), el("td", {}, [a.source]),
          el("td", { "class": "message" }, [a.message]),
          el("td", { "class": "num" }, ["×" + a.count]), el("td", {}, [ago(a.last_seen_at)]), action]));
      });
    }

    /* The sampler's live consistency (figure, windows, per-minute trend) and the processes'
     * heartbeats; both absent from an older server's answer. */
    function liveConsistency(l) {
      if (!l) { return; }
      var figure = text("#live-consistency-figure", l.headline);
      if (figure) { figure.className = "figure " + l.state; }
      var ten = l.windows[1];
      var line = ten.samples ? "within 10 s, live" + l.windows.map(function (w) {
        return " · " + w.seconds + " s " + w.percent; }).join("") +
        (ten.nines !== null ? " · " + ten.nines + " nines" : "") + " · " + ten.samples + " samples"
        : "no samples in the last " + Math.round(l.over_seconds) + " s: is a worker running the sampler?";
      if (l.unreachable) { line += " · " + l.unreachable + " not checkable: cache Redis unreachable"; }
      text("#live-consistency-text", line);
      var svg = $("#live-consistency-trend");
      if (!svg) { return; }
      svg.textContent = "";
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
          (p.alive ? "alive" : "silent") + " · " + p.restarts + " restart" + (p.restarts === 1 ? "" : "s")]));
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
      text("#live-time", "updated " + new Date(data.generated_at).toLocaleTimeString());
    }, function (error) {
      live.classList.add("stale");
      text("#live-time", String(error.message || error));
    });
  }

  /* ------------------------------------------------------------------ sync page */

  function syncPage(root) {
    if (!root.dataset.run || root.dataset.finished === "1") { return; }
    var url = root.dataset.progressUrl.replace(/0$/, root.dataset.run);

    function show(run) {
      var status = $("#run-status");
      status.textContent = run.status + (run.cancel_requested && !run.finished ? " (cancelling)" : "");
      status.className = "pill status-" + run.status;
      var bar = $("#run-progress");
      bar.setAttribute("aria-valuenow", run.percent);
      var fill = $(".progress-bar", bar);
      fill.style.width = run.percent + "%";
      fill.className = "progress-bar status-" + run.status;
      text("#run-percent", run.percent + "%");
      text("#run-rows", run.rows_done.toLocaleString() + " / " + run.rows_total.toLocaleString());
      text("#run-phase", run.phase || "–");
      text("#run-duration", run.duration_seconds === null ? "" : run.duration_seconds + " s");
      var row = $("#run-row");
      if (row) {
        ["rows_done", "created", "updated", "unchanged", "failed"].forEach(function (name) {
          text('[data-col="' + name + '"]', run[name], row);
        });
        text('[data-col="gaps"]', run.gaps === null ? "–" : run.gaps, row);
        text('[data-col="duration_seconds"]', run.duration_seconds === null ? "" : run.duration_seconds + " s", row);
        var pillCell = text('[data-col="status"]', run.status, row);
        pillCell.className = "pill status-" + run.status;
      }
      if (!run.finished) { return true; }
      ["created", "updated", "unchanged", "failed"].forEach(function (name) {
        text("#sum-" + name, run[name].toLocaleString());
      });
      $("#sum-failed-box").className = run.failed ? "failed" : "";
      text("#sum-duration", run.duration_seconds === null ? "–" : run.duration_seconds + " s");
      text("#sum-gaps", run.gaps === null ? "–" : run.gaps);
      text("#sum-message", run.message);
      $("#run-summary").hidden = false;
      var cancel = $("#cancel-form");
      if (cancel) { cancel.hidden = true; }
      var start = $("#start-sync");
      if (start) { start.disabled = false; start.removeAttribute("title"); }
      root.dataset.finished = "1";
      return false;
    }

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
