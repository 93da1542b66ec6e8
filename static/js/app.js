/* Small enhancements on top of pages that work without JavaScript. */
(function () {
  "use strict";
  document.documentElement.classList.add("js");

  function $(selector, root) { return (root || document).querySelector(selector); }
  function $$(selector, root) { return Array.from((root || document).querySelectorAll(selector)); }
  var narrow = window.matchMedia("(max-width: 760px)");

  // --- Bulk selection ---------------------------------------------------------------
  function jobBoxes() { return $$('input[name="job"][form="bulk-form"]'); }

  function updateBulk() {
    var count = jobBoxes().filter(function (b) { return b.checked; }).length;
    var label = $("#bulk-count");
    if (label) {
      label.textContent = count ? count + " selected"
        : (label.dataset.empty || "Select jobs to act on them");
    }
    // The buttons sit outside the form (form="bulk-form"): nothing to do until a job is ticked.
    $$('button[form="bulk-form"][name="action"]').forEach(function (b) { b.disabled = count === 0; });
    var all = $("#select-all");
    if (all) {
      var boxes = jobBoxes();
      all.checked = boxes.length > 0 && count === boxes.length;
      all.indeterminate = count > 0 && count < boxes.length;
    }
  }

  document.addEventListener("change", function (event) {
    var target = event.target;
    if (target.id === "select-all") {
      jobBoxes().forEach(function (b) { b.checked = target.checked; });
    }
    if (target.matches && target.matches('input[name="job"], #select-all')) updateBulk();
    // Filters apply as soon as a menu changes; the Search button stays for typing.
    if (target.form && target.form.id === "filters" && target.tagName === "SELECT") {
      target.form.submit();
    }
  });

  // --- Live updates: only what the page shows, once ------------------------------------
  // A message may name rows this page does not show (another page of the list, another
  // filter) or events it shows already (the page loaded after they happened): those
  // parts are dropped before htmx swaps, so nothing is repeated and nothing is missing.
  function oobTarget(el) {
    var spec = el.getAttribute("hx-swap-oob") || "";
    var colon = spec.indexOf(":");
    return {
      style: colon >= 0 ? spec.slice(0, colon) : spec,
      selector: colon >= 0 ? spec.slice(colon + 1) : (el.id ? "#" + el.id : "")
    };
  }

  if (window.htmx) {
    htmx.defineExtension("live", {
      transformResponse: function (text) {
        if (text.indexOf("hx-swap-oob") === -1) return text;
        var holder = document.createElement("template");
        holder.innerHTML = text;
        var changed = false;
        Array.from(holder.content.children).forEach(function (el) {
          if (!el.hasAttribute("hx-swap-oob")) return;
          var oob = oobTarget(el);
          var target = oob.selector ? document.querySelector(oob.selector) : null;
          if (!target) { el.remove(); changed = true; return; }
          if (oob.style === "beforeend" || oob.style === "afterbegin") {
            Array.from(el.children).forEach(function (child) {
              var twin = child.id ? document.getElementById(child.id) : null;
              if (!twin) return;
              // Shown already: take the fresher copy in place.
              child.remove();
              twin.replaceWith(child);
              htmx.process(child);
              changed = true;
            });
            if (!el.children.length) el.remove();
          }
        });
        return changed ? holder.innerHTML : text;
      }
    });
  }

  document.body.addEventListener("htmx:oobBeforeSwap", function (event) {
    var target = event.detail.target;
    var fragment = event.detail.fragment;
    if (!target || !fragment) return;
    // A live row replaces the old one: keep its checkbox ticked.
    if (target.tagName === "TR") {
      var old = $('input[name="job"]', target);
      var fresh = fragment.querySelector && fragment.querySelector('input[name="job"]');
      if (old && fresh) fresh.checked = old.checked;
    }
    // A video someone is watching is not restarted by news about its job.
    if (target.id === "job-outcome") {
      var playing = $("#job-video", target);
      var next = fragment.querySelector && fragment.querySelector("#job-video");
      if (playing && next && playing.getAttribute("src") === next.getAttribute("src")) {
        event.detail.shouldSwap = false;
      }
    }
  });
  document.body.addEventListener("htmx:oobAfterSwap", function () {
    updateBulk();
    localise(document);
  });

  // --- Connection state: live, or stale -----------------------------------------------
  var lostAt = null;
  var connected = false;

  // The socket extension's own back-off doubles up to a minute between tries: after a
  // long outage a page went on saying "Reconnecting…" for up to a minute after the
  // server was back. Here a wait never passes 5 s, and is spread over its upper half so
  // that the studio's open pages do not all knock in the same instant.
  function backoff(tries) { return Math.min(500 * Math.pow(2, tries), 5000); }
  function reconnectDelay(retries) {
    var ceiling = backoff(retries);
    return ceiling / 2 + Math.random() * ceiling / 2;
  }
  if (window.htmx) htmx.config.wsReconnectDelay = reconnectDelay;

  // Why a page is no longer live, from the socket's close code (jobs/web/consumers.py):
  // only a lost connection is tried again.
  var LOST = { 4401: "signed-out", 4404: "gone" };
  var DOT = { "connection": "Reconnecting…", "signed-out": "Signed out", "gone": "Not live" };

  function setLive(on, why) {
    var dot = $("#live");
    if (!dot) return;
    dot.classList.toggle("on", on);
    dot.textContent = on ? "Live" : DOT[why || "connection"];
  }

  function markStale(stale, why) {
    var area = $(".live-area");
    if (area) area.classList.toggle("stale", stale);
    var note = $("#stale-note");
    if (note) {
      note.hidden = !stale;
      var says = $$("[data-lost]", note);
      var shown = says.some(function (el) { return el.dataset.lost === why; }) ? why : "connection";
      says.forEach(function (el) { el.hidden = el.dataset.lost !== shown; });
      $$(".stale-since", note).forEach(function (since) {
        if (lostAt) since.textContent = clock(lostAt, true);
      });
    }
  }

  // After a lost connection the page missed news: its parts are fetched again. Which
  // parts is remembered, not looked up then: a part a push has replaced (an out-of-band
  // swap puts the pushed element in its place) no longer carries data-refresh.
  var refreshIds = [];

  function rememberParts() {
    $$("[data-refresh]").forEach(function (el) {
      if (el.id && refreshIds.indexOf(el.id) < 0) refreshIds.push(el.id);
    });
  }

  function refreshParts() {
    rememberParts();
    var ids = refreshIds.filter(function (id) { return document.getElementById(id); });
    if (!ids.length) return Promise.resolve();
    return fetch(location.href, { credentials: "same-origin", cache: "no-store" })
      .then(function (response) { return response.ok ? response.text() : Promise.reject(response); })
      .then(function (html) {
        var fresh = new DOMParser().parseFromString(html, "text/html");
        ids.forEach(function (id) {
          var now = document.getElementById(id);
          var then = fresh.getElementById(id);
          if (now && then) {
            now.replaceWith(then);
            htmx.process(then);
          }
        });
        updateBulk();
        localise(document);
      });
  }

  // The socket is back but the page's own fetch can still fail (a proxy's 502 while the
  // server warms up): with no reconnect to come, the page tries again by itself.
  function catchUp(attempt) {
    refreshParts().then(function () {
      // A socket accepted only to be closed with its reason (signed out) is not back.
      if (connected) { lostAt = null; markStale(false); }
    }, function () {
      setTimeout(function () {
        if (connected && lostAt) catchUp(attempt + 1);
      }, backoff(attempt));
    });
  }

  // Signed out, or the job gone: the page says so and asks nothing more. Its panels'
  // own polls (the log tail, the output file) would otherwise fetch the sign-in page
  // into a panel, or a 404 every few seconds (which Django's debug mode shows as the
  // whole page).
  var ended = null;
  var liveSocket = null;  // the socket open now, if any

  function lose(why) {
    connected = false;
    if (why !== "connection" && !ended) {
      ended = why;
      // A panel may have heard first, with the socket still open: it closes (1000 is
      // not a code the extension tries again after), and nothing it sent is shown.
      if (liveSocket && liveSocket.readyState === 1) liveSocket.close(1000);
    }
    setLive(false, ended || why);
    if (!lostAt) lostAt = new Date();
    markStale(true, ended || why);
  }

  document.body.addEventListener("htmx:wsOpen", function () {
    if (ended) return;
    connected = true;
    setLive(true);
    if (lostAt) catchUp(0);
  });
  document.body.addEventListener("htmx:wsClose", function (event) {
    var closed = event.detail && event.detail.event;
    lose((closed && LOST[closed.code]) || "connection");
  });

  // A panel's request can learn it first, while the socket is away or before it hears.
  function endedBy(xhr) {
    var note = $("#stale-note");
    if (!note || !$(".live-area")) return null;
    var signIn = $('[data-lost="signed-out"] a', note);
    if (signIn && xhr.responseURL &&
        new URL(xhr.responseURL).pathname === new URL(signIn.href).pathname) return "signed-out";
    if (xhr.status === 404 && $('[data-lost="gone"]', note)) return "gone";
    return null;
  }
  document.body.addEventListener("htmx:beforeOnLoad", function (event) {
    var why = endedBy(event.detail.xhr);
    if (!why) return;
    event.preventDefault();  // nothing of that answer is swapped in
    event.stopPropagation();
    lose(why);
  });
  document.body.addEventListener("htmx:wsBeforeMessage", function (event) {
    if (ended) event.preventDefault();
  });
  // The panels' own polls stop; what a person clicks still goes (and its answer, the
  // sign-in page or a 404, is not swapped in either).
  document.body.addEventListener("htmx:beforeRequest", function (event) {
    var config = event.detail.requestConfig;
    var cause = config && config.triggeringEvent;
    if (ended && !(cause && cause.isTrusted)) event.preventDefault();
  });
  // The socket extension may have set its next try already: that try gets a socket
  // that is closed and never calls back, so the page knocks no more.
  if (window.htmx && htmx.createWebSocket) {
    var openSocket = htmx.createWebSocket;
    htmx.createWebSocket = function (url) {
      if (!ended) return (liveSocket = openSocket(url));
      return { readyState: 3, OPEN: 1, close: function () {}, send: function () {},
               addEventListener: function () {} };
    };
  }

  // --- Times: the viewer's own time zone, "just now", elapsed -----------------------
  var zone = (Intl.DateTimeFormat().resolvedOptions().timeZone) || "";

  function zoneName(date) {
    try {
      var parts = new Intl.DateTimeFormat(undefined, { timeZoneName: "short" }).formatToParts(date);
      var found = parts.find(function (p) { return p.type === "timeZoneName"; });
      return found ? found.value : zone;
    } catch (e) { return zone; }
  }

  function two(n) { return (n < 10 ? "0" : "") + n; }

  function clock(date, withZone) {
    var text = two(date.getHours()) + ":" + two(date.getMinutes()) + ":" + two(date.getSeconds());
    return withZone ? text + " " + zoneName(date) : text;
  }

  function localise(root) {
    $$("time.local", root).forEach(function (el) {
      var date = new Date(el.getAttribute("datetime"));
      if (isNaN(date)) return;
      var day = date.getFullYear() + "-" + two(date.getMonth() + 1) + "-" + two(date.getDate());
      el.textContent = (el.dataset.style === "time" ? "" : day + " ") + clock(date, true);
      el.title = zone;
    });
  }

  function ago(date) {
    var seconds = (Date.now() - date.getTime()) / 1000;
    if (seconds < 60) return "just now";
    if (seconds < 3600) return Math.floor(seconds / 60) + " min ago";
    if (seconds < 86400) return Math.floor(seconds / 3600) + " h ago";
    if (seconds < 2 * 86400) return "yesterday";
    return date.toLocaleDateString(undefined, { month: "short", day: "numeric" });
  }

  function span(seconds) {
    seconds = Math.max(0, Math.round(seconds));
    if (seconds < 60) return seconds + " s";
    var minutes = Math.floor(seconds / 60);
    if (minutes < 60) return minutes + " min " + two(seconds % 60) + " s";
    return Math.floor(minutes / 60) + " h " + two(minutes % 60) + " min";
  }

  function tick() {
    $$("time.ago").forEach(function (el) {
      var date = new Date(el.getAttribute("datetime"));
      if (!isNaN(date)) el.textContent = ago(date);
    });
    if (!lostAt) {
      $$(".elapsed[data-since]").forEach(function (el) {
        var since = new Date(el.dataset.since);
        if (!isNaN(since)) el.textContent = span((Date.now() - since.getTime()) / 1000);
      });
    }
  }
  setInterval(tick, 1000);

  // --- Confirmations, copy, form helpers --------------------------------------------
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var submitter = event.submitter;
    var question = (submitter && submitter.dataset.confirm) || form.dataset.confirm;
    if (question && !window.confirm(question)) event.preventDefault();
  });

  document.addEventListener("click", function (event) {
    var fill = event.target.closest("[data-fill]");
    if (fill) {
      var input = document.getElementById(fill.dataset.fill);
      if (input) { input.value = fill.dataset.value; input.focus(); }
      return;
    }
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

  // --- The log tail keeps to its end while you read there ---------------------------
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
  document.body.addEventListener("htmx:afterSettle", function (event) {
    scrollLog();
    localise(event.target);
  });

  // --- The log viewer: search, wrap, errors only ------------------------------------
  function setUpLogViewer() {
    var viewer = $("#log-viewer");
    if (!viewer) return;
    var search = $("#log-search");
    var wrap = $("#log-wrap");
    var problems = $("#log-problems");
    var found = $("#log-found");
    var lines = $$(".ln", viewer);
    function apply() {
      var needle = (search.value || "").trim().toLowerCase();
      var only = problems.checked;
      var shown = 0;
      lines.forEach(function (line) {
        var hit = !needle || line.textContent.toLowerCase().indexOf(needle) !== -1;
        var kind = only ? (line.classList.contains("ln-error") || line.classList.contains("ln-warning")) : true;
        var visible = hit && kind;
        line.hidden = !visible;
        line.classList.toggle("hit", Boolean(needle) && hit);
        if (visible) shown += 1;
      });
      $$(".log-section", viewer).forEach(function (section) {
        section.hidden = !$$(".ln", section).some(function (line) { return !line.hidden; });
      });
      found.textContent = (needle || only) ? shown + " of " + lines.length + " lines" : "";
    }
    var timer = null;
    search.addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(apply, 150);
    });
    problems.addEventListener("change", apply);
    wrap.checked = localStorage.getItem("log-wrap") === "1";
    viewer.classList.toggle("wrap", wrap.checked);
    wrap.addEventListener("change", function () {
      viewer.classList.toggle("wrap", wrap.checked);
      localStorage.setItem("log-wrap", wrap.checked ? "1" : "0");
    });
  }

  // --- Browser notifications about your own renders --------------------------------
  var TITLES = { started: "Render started", completed: "Render completed",
                 failed: "Render failed", preview: "Preview ready for review" };
  // The server sends only the events the person chose, as chosen at that moment (a
  // choice changed in another tab holds here too), so every signed-in page follows.
  var following = false;

  function followNotifications() {
    if (following || !document.body.dataset.user || !("Notification" in window) ||
        Notification.permission !== "granted") return;
    following = true;
    var socket = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") +
                               location.host + "/ws/notify");
    socket.onmessage = function (message) {
      var news;
      try { news = JSON.parse(message.data); } catch (e) { return; }
      news.events.forEach(function (kind) {
        var note = new Notification((TITLES[kind] || kind) + ": " + news.name, {
          body: kind === "failed" && news.error ? news.error : "Open it in the render manager.",
          tag: news.job + ":" + kind
        });
        note.onclick = function () { window.focus(); location.href = news.url; };
      });
    };
    socket.onclose = function (event) {
      following = false;
      if (event.code !== 4401) setTimeout(followNotifications, 5000);
    };
  }

  function setUpPermission() {
    var box = $("#browser-permission");
    if (!box || !("Notification" in window)) return;
    var state = $("#browser-permission-state");
    var button = $("#allow-notifications");
    function show() {
      var words = { granted: "This browser shows your notifications.",
                    denied: "This browser blocks notifications from this site (its site settings can allow them).",
                    "default": "This browser has not been allowed to show notifications yet." };
      state.textContent = words[Notification.permission] + " ";
      button.hidden = Notification.permission !== "default";
    }
    box.hidden = false;
    show();
    button.addEventListener("click", function () {
      Notification.requestPermission().then(function (permission) {
        show();
        if (permission === "granted") followNotifications();  // not only from the next page
      });
    });
  }

  // --- Start -------------------------------------------------------------------------
  document.addEventListener("DOMContentLoaded", function () {
    rememberParts();
    updateBulk();
    scrollLog();
    localise(document);
    tick();
    var note = $("#time-zone-note");
    if (note && zone) note.textContent = "Times are shown in your time zone, " + zone + " (" + zoneName(new Date()) + ").";
    var more = $("#more-filters");
    if (more && narrow.matches && !more.hasAttribute("data-keep-open")) more.open = false;
    setUpLogViewer();
    setUpPermission();
    followNotifications();
  });
})();
