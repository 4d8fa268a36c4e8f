/* The console's "Event system" page (templates/admin/console/events.html): the replay tool's
   debugging client. It opens an EventSource on the URL the server checked (data-url) and
   lists every frame as it arrives, as text (never as markup), the newest data-max of them.
   EventSource resumes by itself after a dropped connection (Last-Event-ID). */
(function () {
  "use strict";

  var root = document.getElementById("event-replay");
  if (!root || typeof EventSource === "undefined") {
    return;
  }
  var list = document.getElementById("replay-frames");
  var state = document.getElementById("replay-state");
  var stop = document.getElementById("replay-stop");
  var max = parseInt(root.getAttribute("data-max"), 10) || 200;
  var received = 0;
  var source = new EventSource(root.getAttribute("data-url"));

  function say(text) {
    state.textContent = text;
  }

  function show(event) {
    received += 1;
    var item = document.createElement("li");
    if (event.type === "reset") {
      item.className = "frame-reset";
    }
    var text = document.createElement("pre");
    var lines = [];
    if (event.lastEventId) {
      lines.push("id: " + event.lastEventId);
    }
    lines.push("event: " + event.type);
    lines.push("data: " + event.data);
    text.textContent = lines.join("\n");
    item.appendChild(text);
    list.appendChild(item);
    while (list.children.length > max) {
      list.removeChild(list.firstElementChild);
    }
    say("open · " + received + " frame" + (received === 1 ? "" : "s") + " received");
  }

  ["message", "part", "part_deleted", "stock", "reset"].forEach(function (name) {
    source.addEventListener(name, show);
  });
  source.addEventListener("open", function () {
    say("open · " + received + " frame" + (received === 1 ? "" : "s") + " received");
  });
  source.addEventListener("error", function () {
    say(source.readyState === EventSource.CLOSED ? "closed" : "reconnecting…");
  });
  stop.addEventListener("click", function () {
    source.close();
    stop.disabled = true;
    say("stopped · " + received + " frame" + (received === 1 ? "" : "s") + " received");
  });
})();
