/* The console's shared behaviour: local times and numbers, confirmations, announcements. No inline code
   anywhere (the Content-Security-Policy forbids it), so pages hook in through data attributes. */
(function () {
  "use strict";
  var locale = document.body.dataset.locale || document.documentElement.lang || "en";
  var dateFormat = new Intl.DateTimeFormat(locale, {
    year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit",
  });

  /** Rewrite <time datetime> elements (rendered in UTC by the server) in the viewer's time zone. */
  function localTimes(root) {
    (root || document).querySelectorAll("time[datetime]").forEach(function (el) {
      if (el.dataset.local) return;
      var when = new Date(el.getAttribute("datetime"));
      if (isNaN(when.getTime())) return;
      el.title = el.textContent.trim();
      el.textContent = dateFormat.format(when);
      el.dataset.local = "1";
    });
  }

  /** Say something to screen-reader users (and show it briefly for everyone in #announcer). */
  function announce(message) {
    var box = document.getElementById("announcer");
    if (!box) return;
    box.textContent = "";
    window.setTimeout(function () { box.textContent = message; }, 50);
  }

  /** Fill "{name}" placeholders of a translated message. */
  function format(message, values) {
    return String(message || "").replace(/\{(\w+)\}/g, function (whole, name) {
      return Object.prototype.hasOwnProperty.call(values, name) ? String(values[name]) : whole;
    });
  }

  function formatNumber(value, digits) {
    var options = digits === undefined ? {} : { maximumFractionDigits: digits, minimumFractionDigits: digits };
    return new Intl.NumberFormat(locale, options).format(value);
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (form instanceof HTMLFormElement && form.dataset.confirm && !window.confirm(form.dataset.confirm)) {
      event.preventDefault();
      event.stopImmediatePropagation();
    }
  }, true);

  document.addEventListener("htmx:afterSettle", function (event) { localTimes(event.target); });
  document.addEventListener("htmx:responseError", function (event) {
    var status = event.detail && event.detail.xhr ? event.detail.xhr.status : 0;
    var target = event.detail && event.detail.target;
    // Pages render their own errors (status 4xx with a message); show them where the request was aimed.
    if (target && event.detail.xhr && event.detail.xhr.responseText && status >= 400 && status < 500) {
      var note = document.createElement("div");
      note.innerHTML = event.detail.xhr.responseText;
      var message = note.querySelector(".flash");
      if (message) { target.insertAdjacentElement("beforebegin", message); }
    }
  });
  document.addEventListener("DOMContentLoaded", function () { localTimes(document); });
  if (document.readyState !== "loading") localTimes(document);

  window.console2a = { localTimes: localTimes, announce: announce, format: format, formatNumber: formatNumber, locale: locale };
})();
