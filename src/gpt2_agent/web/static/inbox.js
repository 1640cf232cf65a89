/* Approvals inbox: j/k move, a/r decide; items leave the list live when anyone decides them. */
(function () {
  "use strict";
  var list = document.getElementById("inbox");
  if (!list) return;
  var app = window.console2a;
  var selected = 0;

  function items() { return Array.prototype.slice.call(list.querySelectorAll("li.inbox-item:not(.decided)")); }

  function refreshCount() {
    var n = items().length;
    var count = document.getElementById("inbox-count");
    if (count) count.textContent = app.formatNumber(n);
    var empty = document.getElementById("inbox-empty");
    if (empty) empty.hidden = n > 0;
  }

  function select(index, focus) {
    var all = items();
    if (!all.length) { selected = 0; return; }
    selected = Math.max(0, Math.min(index, all.length - 1));
    all.forEach(function (el, i) {
      el.classList.toggle("selected", i === selected);
      el.setAttribute("aria-current", i === selected ? "true" : "false");
    });
    if (focus) {
      all[selected].focus({ preventScroll: true });
      all[selected].scrollIntoView({ block: "nearest" });
    }
  }

  document.addEventListener("keydown", function (event) {
    if (event.defaultPrevented || event.altKey || event.ctrlKey || event.metaKey) return;
    var tag = (event.target && event.target.tagName) || "";
    if (tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || event.target.isContentEditable) return;
    // Single-key shortcuts only while the inbox (or nothing in particular) has focus, so they never
    // steal keys from the navigation or from assistive technology elsewhere (WCAG 2.1.4).
    var active = document.activeElement;
    if (active && active !== document.body && active.id !== "main" && !list.contains(active)) return;
    var all = items();
    if (!all.length) return;
    var key = event.key.toLowerCase();
    if (key === "j") { select(selected + 1, true); event.preventDefault(); }
    else if (key === "k") { select(selected - 1, true); event.preventDefault(); }
    else if (key === "a" || key === "r") {
      var button = all[selected].querySelector(key === "a" ? "button.approve" : "button.reject");
      if (button) { button.click(); event.preventDefault(); }
    }
  });

  list.addEventListener("focusin", function (event) {
    var item = event.target.closest && event.target.closest("li.inbox-item");
    if (item) select(items().indexOf(item), false);
  });

  function removeItem(el, message) {
    var wasSelected = el.classList.contains("selected");
    el.remove();
    refreshCount();
    if (message) app.announce(message);
    if (wasSelected) select(selected, false);
  }

  // Our own decision: the server swapped in a hidden placeholder; drop it and keep the place in the list.
  document.addEventListener("htmx:afterSwap", function () {
    list.querySelectorAll("li.decided").forEach(function (el) { el.remove(); });
    refreshCount();
    select(selected, true);
  });

  function addMissing(wanted) {
    fetch(list.dataset.items, { headers: { Accept: "text/html" }, credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.text() : ""; })
      .then(function (html) {
        if (!html) return;
        var holder = document.createElement("template");
        holder.innerHTML = html;
        var added = 0;
        holder.content.querySelectorAll("li.inbox-item").forEach(function (el) {
          var id = Number(el.dataset.id);
          if (wanted.indexOf(id) >= 0 && !list.querySelector('li.inbox-item[data-id="' + id + '"]')) {
            list.appendChild(el);
            if (window.htmx) window.htmx.process(el);
            app.localTimes(el);
            added += 1;
          }
        });
        refreshCount();
        if (added) app.announce(app.format(list.dataset.msgNew, { n: added }));
        if (items().length === added) select(0, false);
      });
  }

  if (window.EventSource && list.dataset.stream) {
    var source = new EventSource(list.dataset.stream);
    source.addEventListener("pending", function (event) {
      var ids = JSON.parse(event.data).ids;
      var shown = [];
      items().forEach(function (el) {
        var id = Number(el.dataset.id);
        shown.push(id);
        if (ids.indexOf(id) < 0) removeItem(el, app.format(list.dataset.msgGone, { id: id }));
      });
      var missing = ids.filter(function (id) { return shown.indexOf(id) < 0; });
      if (missing.length) addMissing(missing);
    });
    source.addEventListener("signedout", function () {
      source.close();
      window.location.assign("/login?next=" + encodeURIComponent(window.location.pathname));
    });
    window.addEventListener("pagehide", function () { source.close(); });
  }
  select(0, false);
  refreshCount();
})();
