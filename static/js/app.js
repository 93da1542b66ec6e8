/* Small enhancements on top of pages that work without JavaScript. */
(function () {
  "use strict";
  document.documentElement.classList.add("js");

  function $(selector, root) { return (root || document).querySelector(selector); }
  function $$(selector, root) { return Array.from((root || document).querySelectorAll(selector)); }

  // --- Bulk selection ---------------------------------------------------------------
  function selectedBoxes() { return $$('input[name="job"][form="bulk-form"]:checked'); }

  function updateBulk() {
    var count = selectedBoxes().length;
    var label = $("#bulk-count");
    if (label) {
      label.textContent = count ? count + " selected"
        : (label.dataset.empty || "Select jobs to act on them");
    }
    $$("#bulk-form button[name=action]").forEach(function (b) { b.disabled = count === 0; });
    var all = $("#select-all");
    if (all) {
      var boxes = $$('input[name="job"][form="bulk-form"]');
      all.checked = boxes.length > 0 && count === boxes.length;
      all.indeterminate = count > 0 && count < boxes.length;
    }
  }

  document.addEventListener("change", function (event) {
    var target = event.target;
    if (target.id === "select-all") {
      $$('input[name="job"][form="bulk-form"]').forEach(function (b) { b.checked = target.checked; });
    }
    if (target.matches && target.matches('input[name="job"], #select-all')) updateBulk();
    // Filters apply as soon as a menu changes; the Apply button stays for typing.
    if (target.form && target.form.id === "filters" && target.tagName === "SELECT") {
      target.form.submit();
    }
  });

  // A live row replaces the old one: keep its checkbox ticked.
  document.body.addEventListener("htmx:oobBeforeSwap", function (event) {
    var target = event.detail.target;
    if (!target || target.tagName !== "TR") return;
    var old = $('input[name="job"]', target);
    var fresh = event.detail.fragment && event.detail.fragment.querySelector('input[name="job"]');
    if (old && fresh) fresh.checked = old.checked;
  });
  document.body.addEventListener("htmx:oobAfterSwap", updateBulk);

  // --- Confirmations and copy -------------------------------------------------------
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var submitter = event.submitter;
    var question = (submitter && submitter.dataset.confirm) || form.dataset.confirm;
    if (question && !window.confirm(question)) event.preventDefault();
  });

  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy]");
    if (!button) return;
    var source = document.getElementById(button.dataset.copy);
    if (!source) return;
    var text = source.textContent;
    var done = function () {
      var before = button.textContent;
      button.textContent = "Copied";
      setTimeout(function () { button.textContent = before; }, 1500);
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done);
    } else {
      var range = document.createRange();
      range.selectNodeContents(source);
      var selection = window.getSelection();
      selection.removeAllRanges();
      selection.addRange(range);
      document.execCommand("copy");
      done();
    }
  });

  // --- Live connection state and the log tail ----------------------------------------
  function setLive(on) {
    var dot = $("#live");
    if (!dot) return;
    dot.classList.toggle("on", on);
    dot.textContent = on ? "Live" : "Reconnecting…";
  }
  document.body.addEventListener("htmx:wsOpen", function () { setLive(true); });
  document.body.addEventListener("htmx:wsClose", function () { setLive(false); });

  var stickToBottom = true;
  document.body.addEventListener("htmx:beforeSwap", function (event) {
    var pre = $("#job-log pre");
    if (pre && event.detail.target && event.detail.target.id === "job-log") {
      stickToBottom = pre.scrollHeight - pre.scrollTop - pre.clientHeight < 40;
    }
  });
  function scrollLog() {
    var pre = $("#job-log pre");
    if (pre && stickToBottom) pre.scrollTop = pre.scrollHeight;
  }
  document.body.addEventListener("htmx:afterSettle", scrollLog);

  document.addEventListener("DOMContentLoaded", function () {
    updateBulk();
    scrollLog();
  });
})();
