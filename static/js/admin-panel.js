/* The admin panel, on top of a page that works without JavaScript:
 * - an action link opens its confirmation (the server's own, fetched fresh:
 *   "3 jobs will be cancelled") in a <dialog> instead of a page of its own;
 * - the live dot follows the sections' htmx polling;
 * - a running update's progress and log follow /api/system/update/status.
 */
(function () {
  "use strict";

  var dialog = document.getElementById("confirm-dialog");
  var dialogBody = document.getElementById("confirm-dialog-body");

  // --- Confirmations in a dialog ------------------------------------------------------
  function openConfirmation(link) {
    return fetch(link.href, {
      headers: { "HX-Request": "true" }, credentials: "same-origin", cache: "no-store"
    }).then(function (response) {
      if (response.status === 401 || response.status === 403) throw new Error("signed out");
      return response.text();
    }).then(function (html) {
      dialogBody.innerHTML = html;
      dialog.showModal();
      var first = dialogBody.querySelector("#confirm-cancel");
      if (first) first.focus();
    });
  }

  document.addEventListener("click", function (event) {
    var link = event.target.closest && event.target.closest("a[data-dialog]");
    if (link && dialog && typeof dialog.showModal === "function") {
      if (event.ctrlKey || event.metaKey || event.shiftKey || event.button !== 0) return;
      event.preventDefault();
      // On any trouble, fall back to the confirmation page.
      openConfirmation(link).catch(function () { window.location.href = link.href; });
      return;
    }
    var close = event.target.closest && event.target.closest("#confirm-dialog [data-close]");
    if (close) {
      event.preventDefault();
      dialog.close();
    }
  });

  if (dialog) {
    dialog.addEventListener("close", function () { dialogBody.innerHTML = ""; });
    // A second press while the action runs does nothing.
    dialog.addEventListener("submit", function (event) {
      var button = event.target.querySelector("button[type=submit]");
      if (button) {
        setTimeout(function () { button.disabled = true; button.textContent = "Working…"; }, 0);
      }
    });
  }

  // --- Live dot -----------------------------------------------------------------------
  var live = document.getElementById("live");
  function setLive(on) {
    if (!live) return;
    live.classList.toggle("on", on);
    live.textContent = on ? "Live" : "Reconnecting…";
  }
  document.body.addEventListener("htmx:afterRequest", function (event) {
    setLive(!!(event.detail && event.detail.successful));
  });
  document.body.addEventListener("htmx:sendError", function () { setLive(false); });
  if (live) setLive(true);

  // --- A running update ---------------------------------------------------------------
  var UPDATE_POLL_MS = 1000;

  function followUpdate() {
    var box = document.getElementById("update-run");
    if (!box || box.dataset.state !== "running" || box.dataset.following) return;
    box.dataset.following = "1";
    var log = document.getElementById("update-log");
    var offset = parseInt(box.dataset.offset || "0", 10) || 0;

    function poll() {
      var url = box.dataset.statusUrl + "?id=" + encodeURIComponent(box.dataset.run) +
        "&offset=" + offset;
      fetch(url, { credentials: "same-origin", cache: "no-store",
                   headers: { "Accept": "application/json" } })
        .then(function (response) {
          if (!response.ok) throw new Error("HTTP " + response.status);
          return response.json();
        })
        .then(function (body) {
          var run = body.run;
          if (!run) return;
          if (run.log_length < offset) {
            // The stored log was trimmed (it keeps its end): start over.
            offset = 0;
            log.textContent = "";
            setTimeout(poll, 0);
            return;
          }
          if (run.log) {
            var atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
            log.textContent += run.log;
            if (atBottom) log.scrollTop = log.scrollHeight;
          }
          offset = run.log_length;
          var bar = document.getElementById("update-progress");
          bar.setAttribute("aria-valuenow", Math.round(run.progress));
          bar.firstElementChild.style.width = run.progress + "%";
          var step = document.getElementById("update-step");
          var state = document.getElementById("update-state");
          state.textContent = run.state.toUpperCase();
          state.className = "run-state run-" + run.state;
          if (run.state === "running") {
            step.textContent = "step " + Math.min(run.steps_done + 1, run.steps_total) +
              " of " + run.steps_total + ": " + run.step;
            setTimeout(poll, UPDATE_POLL_MS);
          } else {
            step.textContent = run.error || "";
            // Over: redraw the section (buttons, last run) from the server.
            if (window.htmx) {
              var section = document.getElementById("update");
              window.htmx.ajax("GET", section.dataset.url, { target: "#update", swap: "innerHTML" });
            }
          }
        })
        .catch(function () { setTimeout(poll, UPDATE_POLL_MS * 3); });
    }
    log.scrollTop = log.scrollHeight;
    poll();
  }

  document.body.addEventListener("htmx:afterSettle", followUpdate);
  followUpdate();
})();
