/* Chat: clear the box after sending and keep the newest message in view. */
(function () {
  "use strict";
  var log = document.getElementById("chat-log");
  var input = document.getElementById("message");
  if (!log || !input) return;
  document.addEventListener("htmx:afterSwap", function (event) {
    if (event.detail.target !== log) return;
    input.value = "";
    input.focus();
    if (log.lastElementChild) log.lastElementChild.scrollIntoView({ block: "end" });
  });
})();
