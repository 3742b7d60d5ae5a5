/* etl-console: the little the console needs beyond htmx. Pages read fine without it. */
(function () {
  "use strict";

  var hideTimer = null;

  function toast(message) {
    var box = document.getElementById("toast");
    if (!box) { return; }
    box.textContent = message;
    box.hidden = false;
    clearTimeout(hideTimer);
    hideTimer = setTimeout(function () { box.hidden = true; }, 8000);
  }

  // The list's poller asks for fresh rows of running pipelines only; with none running it stays
  // quiet. (A listener rather than an hx-trigger filter: filters need eval, which a CSP may forbid.)
  // htmx:confirm comes before htmx reads the poller's hx-include: cancelled any later (at
  // beforeRequest), htmx has already logged an error for the empty selector, every second.
  document.addEventListener("htmx:confirm", function (event) {
    var elt = event.detail.elt;
    if (elt && elt.id === "live-poller" && !document.querySelector("#pipeline-table .live-id")) {
      event.preventDefault();
    }
  });

  // A panel's own refusal (an invalid schedule, a reset while RUNNING, a failed reconciliation)
  // comes back as a 4xx with the panel showing the message: swap it in like a success.
  document.addEventListener("htmx:beforeSwap", function (event) {
    var xhr = event.detail.xhr;
    if (xhr && xhr.status >= 400 && xhr.getResponseHeader("X-Inline-Error") === "true") {
      event.detail.shouldSwap = true;
      event.detail.isError = false;
    }
  });

  // A failed htmx request swaps nothing; say why instead of failing silently.
  document.addEventListener("htmx:responseError", function (event) {
    var xhr = event.detail.xhr;
    var message = "The request failed (HTTP " + xhr.status + ").";
    try {
      var page = new DOMParser().parseFromString(xhr.responseText, "text/html");
      var found = page.getElementById("error-message");
      if (found && found.textContent.trim()) { message = found.textContent.trim(); }
    } catch (ignored) { /* keep the generic message */ }
    if (/CSRF/i.test(message)) { message += " Reload the page and try again."; }
    toast(message);
  });

  // Bulk selection: a row htmx swaps in (a live progress update, its own Run or Pause) keeps its
  // tick; the header box ticks every row on the page; a new list (a filter) starts with none.
  var selected = {};
  function remember(box) {
    if (box.checked) { selected[box.value] = true; } else { delete selected[box.value]; }
  }
  document.addEventListener("change", function (event) {
    var box = event.target;
    if (box.classList && box.classList.contains("row-select")) {
      remember(box);
    } else if (box.id === "select-page") {
      document.querySelectorAll("#pipeline-table .row-select").forEach(function (row) {
        row.checked = box.checked;
        remember(row);
      });
    }
  });
  document.addEventListener("htmx:load", function (event) {
    var elt = event.detail.elt;
    if (!elt || !elt.querySelectorAll) { return; }
    if (elt.id === "pipeline-table") { selected = {}; return; }
    var boxes = elt.matches(".row-select") ? [elt] : elt.querySelectorAll(".row-select");
    boxes.forEach(function (box) { if (selected[box.value]) { box.checked = true; } });
  });

  // Export downloads what the list shows: its filters change the URL through htmx, so follow them.
  document.addEventListener("htmx:pushedIntoHistory", function () {
    var link = document.getElementById("export-link");
    if (link) { link.href = link.getAttribute("data-base") + window.location.search; }
  });

  document.addEventListener("htmx:sendError", function () {
    toast("The server did not answer. Check the connection; live updates resume when it is back.");
  });
})();
