/* Task and run pages: new timeline events arrive over Server-Sent Events; the summary follows them. */
(function () {
  "use strict";
  var timeline = document.getElementById("timeline");
  if (!timeline || !window.EventSource) return;
  var app = window.console2a;
  var live = document.getElementById("timeline-live");
  var pending = null;

  function refreshSummary() {
    if (pending) return;
    pending = window.setTimeout(function () {
      pending = null;
      fetch(timeline.dataset.summary, { headers: { Accept: "text/html" }, credentials: "same-origin" })
        .then(function (response) { return response.ok ? response.text() : ""; })
        .then(function (html) {
          var old = document.getElementById("summary");
          if (!html || !old) return;
          var holder = document.createElement("template");
          holder.innerHTML = html.trim();
          var fresh = holder.content.firstElementChild;
          if (!fresh) return;
          old.replaceWith(fresh);
          if (window.htmx) window.htmx.process(fresh);
          app.localTimes(fresh);
        });
    }, 150);
  }

  var source = new EventSource(timeline.dataset.stream);
  if (live) live.textContent = timeline.dataset.msgLive || "";
  source.addEventListener("transition", function (event) {
    var data = JSON.parse(event.data);
    var holder = document.createElement("template");
    holder.innerHTML = data.html.trim();
    var row = holder.content.firstElementChild;
    if (!row || timeline.querySelector('[data-event="' + row.dataset.event + '"]')) return;
    timeline.appendChild(row);
    app.localTimes(row);
    row.classList.add("fresh");
    refreshSummary();
  });
  source.addEventListener("end", function () {
    source.close();
    if (live) live.textContent = timeline.dataset.msgEnded || "";
    refreshSummary();
  });
  source.addEventListener("signedout", function () {
    source.close();
    window.location.assign("/login?next=" + encodeURIComponent(window.location.pathname));
  });
  window.addEventListener("pagehide", function () { source.close(); });
})();
