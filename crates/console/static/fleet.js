// The fleet page's selections and batch actions (docs/design.md §14.7). Phones are picked one by
// one, by group (its phones that are not DELETED) or all at once; the picks live here, not in
// the page, so they survive the live refresh that replaces the list (and are ticked again after
// it). A toolbar button sends POST /console/actions with the picked phones; the batch it made is
// shown in #batch-progress and followed live: its progress part is fetched again whenever the
// watch stream reports one of its tasks, and on a timer while the stream is down, until it ends.
(function () {
  "use strict";
  var live = document.getElementById("live");
  var bar = document.getElementById("fleet-toolbar");
  if (!live || !bar) return;
  var $ = function (id) { return document.getElementById(id); };
  var picked = {};

  function boxes(sel) { return Array.prototype.slice.call(live.querySelectorAll(sel)); }
  function count() { return Object.keys(picked).length; }

  // The page as the picks say: boxes ticked, groups ticked when all their phones are.
  function show() {
    boxes("input.pick").forEach(function (b) { b.checked = !!picked[b.value]; });
    boxes("input.pick-group").forEach(function (g) {
      var members = groupBoxes(g.value);
      var on = members.filter(function (b) { return b.checked; }).length;
      g.checked = members.length > 0 && on === members.length;
      g.indeterminate = on > 0 && on < members.length;
    });
    var n = count();
    $("picked-count").textContent = n + " selected";
    var all = boxes("input.pick").filter(selectable);
    $("pick-all").checked = all.length > 0 && all.every(function (b) { return picked[b.value]; });
  }

  function selectable(b) { return b.getAttribute("data-status") !== "DELETED"; }
  function groupBoxes(group) {
    return boxes("input.pick").filter(function (b) { return b.getAttribute("data-group") === group && selectable(b); });
  }
  function pick(b, on) { if (on) picked[b.value] = true; else delete picked[b.value]; }

  live.addEventListener("change", function (e) {
    var t = e.target;
    if (t.classList.contains("pick")) pick(t, t.checked);
    else if (t.classList.contains("pick-group")) groupBoxes(t.value).forEach(function (b) { pick(b, t.checked); });
    show();
  });
  $("pick-all").addEventListener("change", function (e) {
    boxes("input.pick").filter(selectable).forEach(function (b) { pick(b, e.target.checked); });
    show();
  });
  // The live refresh replaced the list: tick what is picked again.
  new MutationObserver(show).observe(live, { childList: true });

  function token() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    return Date.now().toString(36) + Math.random().toString(36).slice(2);
  }

  function refuse(text) {
    var el = $("action-error");
    el.textContent = text;
    el.hidden = !text;
  }

  bar.addEventListener("click", function (e) {
    var button = e.target.closest("button[data-op]");
    if (!button) return;
    var op = button.getAttribute("data-op");
    var ask = { op: op, instances: Object.keys(picked), client_token: token() };
    if (!ask.instances.length) return refuse("Select phones first.");
    if (op === "install") {
      ask.app_id = $("install-app").value;
      if (!ask.app_id) return refuse("Choose the app to install.");
    }
    if (op === "command") {
      ask.command = $("command-text").value;
      if (!ask.command.trim()) return refuse("Type the command to run.");
    }
    if ((op === "reset" || op === "stop") &&
        !window.confirm(op + " " + ask.instances.length + " phone(s)?")) return;
    refuse("");
    button.disabled = true;
    fetch("/console/actions", {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-Console": "1" },
      body: JSON.stringify(ask)
    }).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (a) {
        if (!r.ok) throw new Error((a.Code || r.status) + ": " + (a.Message || r.statusText));
        return a;
      });
    }).then(function (a) {
      if (a.TaskId) follow(a.TaskId, a.InvokeId);
      else refuse(a.Action + " sent (request " + a.RequestId + "); see the task center.");
    }, function (err) { refuse(err.message); })
      .then(function () { button.disabled = false; });
  });

  // One batch's panel: its progress part, fetched again on the watch stream's events.
  function follow(taskId, invokeId) {
    var panel = document.createElement("div");
    panel.className = "batch";
    panel.setAttribute("data-task", taskId);
    panel.textContent = "batch " + taskId + " …";
    var box = $("batch-progress");
    box.insertBefore(panel, box.firstChild);
    var source = null, timer = null, busy = false, again = false, done = false;
    function refresh() {
      if (done) return;
      if (busy) { again = true; return; }
      busy = true;
      fetch("/console/tasks/" + encodeURIComponent(taskId) + "?part=progress", { credentials: "same-origin" })
        .then(function (r) { if (!r.ok || r.redirected) throw new Error("not refreshed"); return r.text(); })
        .then(function (html) {
          var next = new DOMParser().parseFromString(html, "text/html").querySelector(".batch");
          if (!next) return;
          panel.innerHTML = next.innerHTML;
          panel.setAttribute("data-updates", String(+(panel.getAttribute("data-updates") || 0) + 1));
          if (next.getAttribute("data-final") === "true") {
            done = true;
            panel.setAttribute("data-final", "true");
            if (source) source.close();
            clearInterval(timer);
          }
        })
        .catch(function () {})
        .then(function () { busy = false; if (again) { again = false; refresh(); } });
    }
    if (window.EventSource && invokeId) {
      source = new EventSource("/console/watch?InvokeId=" + encodeURIComponent(invokeId));
      source.addEventListener("task", function () { panel.setAttribute("data-streamed", "true"); refresh(); });
      source.onopen = refresh;
    }
    // A safety net while the stream is up, and the only way while it is down.
    var ticks = 0;
    timer = setInterval(function () {
      if (!source || source.readyState !== 1 || ++ticks % 3 === 0) refresh();
    }, 1000);
    refresh();
  }
  show();
})();
