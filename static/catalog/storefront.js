/*
 * The storefront's live updates (docs/storefront.md): subscribe to GET /api/events for the
 * parts the page shows and change their stock, price and content in place.
 *
 * - Never older: each part's root element carries data-version (content) and
 *   data-stock-version (stock), rendered by the server; an event or a re-read is applied only
 *   when its version is newer than the element's.
 * - Nothing lost: the first connection resumes from the stream id the server read before it
 *   read the parts (data-last-event-id), so a change between render and subscribe is
 *   replayed. Without one (the cache could not say), the parts are re-read on connect.
 * - Reconnects: EventSource retries on its own with Last-Event-ID; when it gives up (CLOSED,
 *   e.g. an error answer during a server restart) this script reconnects with backoff,
 *   passing ?last_event_id= of the last event it saw. "reset" (history gone): re-read.
 * - document.documentElement.dataset.live: "connecting" | "live" | "reconnecting" (tests
 *   and the benchmark wait on it); shown discreetly in the header.
 */
(function () {
  "use strict";

  var config = document.getElementById("storefront-live");
  if (!config || typeof window.EventSource !== "function") {
    return; // nothing to keep live, or a browser without EventSource: the page stays as rendered
  }

  var root = document.documentElement;
  var eventsUrl = config.dataset.eventsUrl;
  var partsUrl = config.dataset.partsUrl;
  var lastEventId = config.dataset.lastEventId || "";
  var rereadOnOpen = !lastEventId;
  var DESCRIPTION_TAGS = ["P", "BR", "UL", "OL", "LI", "STRONG", "EM", "B", "I", "CODE"];
  var HIGHLIGHT_MS = 2500;
  var BACKOFF_START_MS = 1000;
  var BACKOFF_MAX_MS = 30000;

  var source = null;
  var backoff = BACKOFF_START_MS;
  var reconnectTimer = null;
  var announceTimer = null;
  var pending = [];

  function partElements(id) {
    return document.querySelectorAll('[data-part="' + String(id) + '"]');
  }

  function shownIds() {
    var ids = [];
    document.querySelectorAll("[data-part]").forEach(function (el) {
      var id = el.dataset.part;
      if (/^[0-9]+$/.test(id) && ids.indexOf(id) === -1) {
        ids.push(id);
      }
    });
    return ids;
  }

  // ------------------------------------------------------------------ connection state

  var STATE_TEXT = {
    connecting: "Connecting to live updates…",
    live: "Live",
    reconnecting: "Reconnecting…",
  };

  function setState(state) {
    root.dataset.live = state;
    var box = document.getElementById("live-status");
    var text = document.getElementById("live-status-text");
    if (box && text) {
      box.hidden = false;
      box.className = "live-status live-status-" + state;
      text.textContent = STATE_TEXT[state];
    }
  }

  // ------------------------------------------------------------------ showing changes

  function announce(message) {
    pending.push(message);
    if (announceTimer !== null) {
      return;
    }
    // A burst of changes becomes one announcement, not a queue a screen reader reads for ages.
    announceTimer = window.setTimeout(function () {
      var box = document.getElementById("live-announcer");
      var text =
        pending.length > 3
          ? pending.length + " changes; the latest: " + pending[pending.length - 1]
          : pending.join(" ");
      pending = [];
      announceTimer = null;
      if (box) {
        box.textContent = text;
      }
    }, 300);
  }

  function highlight(el) {
    el.classList.remove("is-changed");
    void el.offsetWidth; // restart the transition when it changes again
    el.classList.add("is-changed");
    window.clearTimeout(el._storefrontHighlight);
    el._storefrontHighlight = window.setTimeout(function () {
      el.classList.remove("is-changed");
    }, HIGHLIGHT_MS);
  }

  function field(el, name) {
    return el.querySelector('[data-field="' + name + '"]');
  }

  function setText(el, name, value) {
    var target = field(el, name);
    var text = String(value);
    if (!target || target.textContent === text) {
      return false;
    }
    target.textContent = text;
    highlight(target);
    return true;
  }

  function specText(value) {
    if (value === true) {
      return "Yes";
    }
    if (value === false) {
      return "No";
    }
    return String(value);
  }

  // The description is sanitised HTML (a few tags, no attributes); rebuilt node by node here
  // from an inert parsed document, so nothing but those tags and text can reach the page.
  function cleanCopy(node, into) {
    node.childNodes.forEach(function (child) {
      if (child.nodeType === Node.TEXT_NODE) {
        into.appendChild(document.createTextNode(child.textContent));
      } else if (child.nodeType === Node.ELEMENT_NODE) {
        if (DESCRIPTION_TAGS.indexOf(child.tagName) !== -1) {
          var copy = document.createElement(child.tagName.toLowerCase());
          cleanCopy(child, copy);
          into.appendChild(copy);
        } else if (["SCRIPT", "STYLE", "TEMPLATE"].indexOf(child.tagName) === -1) {
          cleanCopy(child, into);
        }
      }
    });
  }

  function setDescription(el, html) {
    var target = field(el, "description");
    if (!target) {
      return false;
    }
    var parsed = new DOMParser().parseFromString(String(html || ""), "text/html");
    var fresh = document.createElement("div");
    cleanCopy(parsed.body, fresh);
    if (fresh.innerHTML === target.innerHTML) {
      return false;
    }
    target.replaceChildren.apply(target, Array.prototype.slice.call(fresh.childNodes));
    highlight(target);
    return true;
  }

  function setSpecifications(el, specs) {
    var table = field(el, "specifications");
    if (!table || !specs || typeof specs !== "object") {
      return false;
    }
    var body = document.createElement("tbody");
    var names = Object.keys(specs).sort(); // as the server renders them
    names.forEach(function (name) {
      var row = document.createElement("tr");
      var th = document.createElement("th");
      th.scope = "row";
      th.textContent = name;
      var td = document.createElement("td");
      td.textContent = specText(specs[name]);
      row.append(th, td);
      body.appendChild(row);
    });
    if (!names.length) {
      var empty = document.createElement("tr");
      var cell = document.createElement("td");
      cell.colSpan = 2;
      cell.textContent = "No specifications listed.";
      empty.appendChild(cell);
      body.appendChild(empty);
    }
    var old = table.tBodies[0];
    if (old && old.innerHTML === body.innerHTML) {
      return false;
    }
    if (old) {
      table.replaceChild(body, old);
    } else {
      table.appendChild(body);
    }
    highlight(table);
    return true;
  }

  function isLocalImage(url) {
    return typeof url === "string" && url.charAt(0) === "/" && url.charAt(1) !== "/" && url.indexOf("\\") === -1;
  }

  function setImages(el, images, name) {
    var gallery = field(el, "images");
    if (!gallery || !Array.isArray(images)) {
      return false;
    }
    var fresh = document.createElement("div");
    var external = document.createElement("ul");
    external.className = "external-images";
    images.forEach(function (url, i) {
      if (isLocalImage(url)) {
        var img = document.createElement("img");
        img.src = url;
        img.alt = name + ", image " + (i + 1);
        img.width = 480;
        img.height = 360;
        img.loading = "lazy";
        fresh.appendChild(img);
      } else if (typeof url === "string" && /^https?:\/\//i.test(url)) {
        var item = document.createElement("li");
        var link = document.createElement("a");
        link.href = url;
        link.rel = "noopener noreferrer nofollow";
        link.target = "_blank";
        link.textContent = "Image " + (i + 1) + " on " + new URL(url).host;
        item.appendChild(link);
        external.appendChild(item);
      }
    });
    if (external.childNodes.length) {
      fresh.appendChild(external);
    }
    var before = Array.prototype.map.call(gallery.querySelectorAll("img[src], a[href]"), function (n) {
      return n.getAttribute("src") || n.getAttribute("href");
    });
    var after = Array.prototype.map.call(fresh.querySelectorAll("img[src], a[href]"), function (n) {
      return n.getAttribute("src") || n.getAttribute("href");
    });
    if (before.join("\n") === after.join("\n")) {
      return false;
    }
    if (!fresh.childNodes.length) {
      return false; // keep the placeholder
    }
    gallery.replaceChildren.apply(gallery, Array.prototype.slice.call(fresh.childNodes));
    highlight(gallery);
    return true;
  }

  function setGone(el, gone) {
    var notice = field(el, "gone_notice");
    if (notice) {
      notice.hidden = !gone;
    }
    el.classList.toggle("is-gone", gone);
  }

  function newer(el, attribute, version) {
    // Digits only: a version is a whole number (a stray separator must not make it NaN).
    var shown = Number(String(el.getAttribute(attribute) || "0").replace(/[^0-9]/g, "") || "0");
    return typeof version === "number" && isFinite(version) && !(version <= shown);
  }

  function nameOf(el) {
    var name = field(el, "name");
    return name ? name.textContent : "A part";
  }

  function applyPart(id, version, data) {
    partElements(id).forEach(function (el) {
      if (!newer(el, "data-version", version)) {
        return; // already showing this version or a newer one
      }
      el.setAttribute("data-version", String(version));
      var wasGone = el.classList.contains("is-gone");
      setGone(el, false);
      var changed = [];
      if (data.name !== undefined && setText(el, "name", data.name)) {
        changed.push("name");
      }
      if (data.price !== undefined && setText(el, "price", data.price)) {
        changed.push("price " + config.dataset.currency + data.price);
      }
      if (data.description !== undefined && setDescription(el, data.description)) {
        changed.push("description");
      }
      if (data.specifications !== undefined && setSpecifications(el, data.specifications)) {
        changed.push("specifications");
      }
      if (data.images !== undefined) {
        setImages(el, data.images, data.name || nameOf(el));
      }
      if (wasGone) {
        announce(nameOf(el) + " is available again.");
      } else if (changed.length) {
        announce(nameOf(el) + ": " + changed.join(", ") + " updated.");
      }
    });
  }

  function applyStock(id, version, stock) {
    partElements(id).forEach(function (el) {
      if (!newer(el, "data-stock-version", version)) {
        return;
      }
      el.setAttribute("data-stock-version", String(version));
      var inStock = stock.available_stock > 0;
      var countChanged = setText(el, "available_stock", stock.available_stock);
      var statusChanged = setText(el, "stock_status", inStock ? "In stock" : "Out of stock");
      var box = field(el, "stock_status");
      box = box && box.closest(".stock");
      if (box) {
        box.classList.toggle("stock-in", inStock);
        box.classList.toggle("stock-out", !inStock);
      }
      if (statusChanged) {
        announce(nameOf(el) + " is now " + (inStock ? "in stock" : "out of stock") + ".");
      } else if (countChanged) {
        announce(nameOf(el) + ": " + stock.available_stock + " available.");
      }
    });
  }

  function applyDeleted(id, version) {
    partElements(id).forEach(function (el) {
      if (version !== null && !newer(el, "data-version", version)) {
        return;
      }
      if (version !== null) {
        el.setAttribute("data-version", String(version));
      }
      if (!el.classList.contains("is-gone")) {
        setGone(el, true);
        announce(nameOf(el) + " is no longer available.");
      }
    });
  }

  // ------------------------------------------------------------------ re-reads

  function reread() {
    shownIds().forEach(function (id) {
      fetch(partsUrl + id, { headers: { Accept: "application/json" }, cache: "no-store" })
        .then(function (response) {
          if (response.status === 404) {
            applyDeleted(id, null);
            return null;
          }
          return response.ok ? response.json() : null;
        })
        .then(function (part) {
          if (part) {
            applyPart(id, part.version, part);
            applyStock(id, part.stock.version, part.stock);
          }
        })
        .catch(function () {
          // Offline for a moment: the next reconnect re-reads (rereadOnOpen below).
          rereadOnOpen = true;
        });
    });
  }

  // ------------------------------------------------------------------ the stream

  function onEvent(message) {
    if (message.lastEventId) {
      lastEventId = message.lastEventId;
    }
    var event;
    try {
      event = JSON.parse(message.data);
    } catch (e) {
      return;
    }
    if (!event || typeof event !== "object" || !event.data) {
      return;
    }
    if (event.type === "stock") {
      applyStock(event.part, event.version, event.data);
    } else if (event.type === "part") {
      applyPart(event.part, event.version, event.data);
    } else if (event.type === "part_deleted") {
      applyDeleted(event.part, event.version);
    }
  }

  function url() {
    var query = shownIds().map(function (id) {
      return "part=" + encodeURIComponent(id);
    });
    if (lastEventId) {
      query.push("last_event_id=" + encodeURIComponent(lastEventId));
    }
    return eventsUrl + "?" + query.join("&");
  }

  function connect() {
    reconnectTimer = null;
    source = new EventSource(url());
    source.addEventListener("open", function () {
      setState("live");
      backoff = BACKOFF_START_MS;
      if (rereadOnOpen) {
        rereadOnOpen = false;
        reread();
      }
    });
    ["part", "part_deleted", "stock"].forEach(function (type) {
      source.addEventListener(type, onEvent);
    });
    source.addEventListener("reset", function () {
      reread(); // the stream's history is gone: read what the page shows again
    });
    source.addEventListener("error", function () {
      if (source.readyState === EventSource.CLOSED) {
        source.close();
        scheduleReconnect();
      } else {
        setState("reconnecting"); // the browser retries on its own, with Last-Event-ID
      }
    });
  }

  function scheduleReconnect() {
    setState("reconnecting");
    if (reconnectTimer !== null) {
      return;
    }
    var delay = backoff + Math.floor(Math.random() * backoff * 0.3);
    backoff = Math.min(backoff * 2, BACKOFF_MAX_MS);
    reconnectTimer = window.setTimeout(connect, delay);
  }

  if (!shownIds().length) {
    return;
  }
  setState("connecting");
  connect();
})();
