// A phone's live screen (docs/design.md §14.7), on the console's phone page and on the
// ticket-only viewer page. One WebSocket to /streams/<InstanceId>: the ticket is its first
// message; frames arrive as binary messages with a 24-byte header (kind, size, frame seq, and
// the (tag, seq) of the last input they show); the page's input goes back as small JSON texts.
// Images are decoded one at a time, and a frame arriving meanwhile replaces the one waiting, so
// a slow page drops frames instead of queueing them. H.264 goes through WebCodecs.
//
// The console page asks the server for a ticket (POST /console/phones/<id>/ticket) and may
// reconnect with a new one; the viewer page takes its ticket from the URL's fragment (#t=...),
// which never reaches the server's logs, and cannot get another.
//
// window.cpStats is for tests and the curious: frames, bytes, the codec, the role, viewers,
// and the input latencies measured (pointer down to the first frame drawn that shows it).
(function () {
  "use strict";
  var root = document.getElementById("screen");
  if (!root) return;
  var instance = root.getAttribute("data-instance");
  var consoleMode = root.getAttribute("data-mode") === "console";
  var canvas = document.getElementById("canvas");
  var ctx2d = canvas.getContext("2d");
  var $ = function (id) { return document.getElementById(id); };
  var HEADER = 24;
  var TEXT_BATCH_MS = 30;
  var MAX_TEXT_BYTES = 300;

  var stats = window.cpStats = {
    state: "connecting", frames: 0, drawn: 0, dropped: 0, bytes: 0, codec: null, role: null,
    viewers: 0, session: null, tag: 0, width: 0, height: 0, device: null, latencies: [],
    acks: {}, errors: [], closeCode: null, closeReason: null, rttMs: null, inputs: 0
  };
  var ws = null, seq = 0, frameW = 0, frameH = 0, role = "view", ended = false;
  var pending = {};          // input seq -> performance.now() at the pointer down
  var lastShown = 0;         // the highest input seq of ours a drawn frame showed

  // ---- the connection ----

  function setState(text, isEnd) {
    stats.state = text;
    var el = $("stream-state");
    el.textContent = text;
    el.className = isEnd ? "ended" : "muted";
  }

  function setRole(r) {
    role = r;
    stats.role = r;
    var badge = $("role");
    badge.textContent = r === "control" ? "control" : "watching";
    badge.className = "badge " + (r === "control" ? "control" : "view");
    $("take-control").hidden = r === "control" || ended;
    root.classList.toggle("watching", r !== "control");
    var keys = root.querySelectorAll(".keys button");
    for (var i = 0; i < keys.length; i++) keys[i].disabled = r !== "control";
  }

  function send(msg) {
    if (!ws || ws.readyState !== 1) return 0;
    if (msg.t === "touch" || msg.t === "text" || msg.t === "key" || msg.t === "rotate") {
      msg.seq = ++seq;
      stats.inputs++;
    }
    ws.send(JSON.stringify(msg));
    return msg.seq || 0;
  }

  function ticketFromHash() {
    var m = /(?:^#|&)t=([^&]+)/.exec(location.hash);
    return m ? decodeURIComponent(m[1]) : null;
  }

  function fetchTicket() {
    return post("/console/phones/" + encodeURIComponent(instance) + "/ticket", {})
      .then(function (a) { return a.Ticket; });
  }

  function connect() {
    ended = false;
    $("take-control").hidden = true;
    if ($("reconnect")) $("reconnect").hidden = true;
    setState("connecting…");
    var ticket = consoleMode ? fetchTicket() : Promise.resolve(ticketFromHash());
    ticket.then(function (t) {
      if (!t) {
        finish("no ticket: open this page with #t=<Ticket> from BatchGetAcpConnectionTicket", null);
        return;
      }
      open(t);
    }, function (e) { finish("no ticket: " + e.message, null); });
  }

  function open(ticket) {
    var scheme = location.protocol === "https:" ? "wss://" : "ws://";
    ws = new WebSocket(scheme + location.host + "/streams/" + encodeURIComponent(instance));
    ws.binaryType = "arraybuffer";
    var socket = ws;
    var bye = null;
    socket.onopen = function () {
      // Without WebCodecs (plain HTTP on another host) H.264 cannot be shown: ask for images.
      socket.send(JSON.stringify({ t: "hello", ticket: ticket, want: window.VideoDecoder ? "auto" : "png" }));
    };
    socket.onmessage = function (ev) {
      if (typeof ev.data === "string") {
        var m;
        try { m = JSON.parse(ev.data); } catch (e) { return; }
        if (m.t === "bye") bye = m.reason;
        onText(m);
      } else {
        onFrame(ev.data);
      }
    };
    socket.onclose = function (ev) {
      if (socket !== ws) return;
      stats.closeCode = ev.code;
      stats.closeReason = bye || ev.reason || null;
      finish("ended: " + (bye || ev.reason || "connection closed") + " (" + ev.code + ")", ev.code);
    };
  }

  function finish(text, code) {
    ended = true;
    setState(text, true);
    $("take-control").hidden = true;
    $("role").textContent = "ended";
    $("role").className = "badge idle";
    var again = $("reconnect");
    if (again && consoleMode) again.hidden = false;
    if (code === null && stats.closeCode === null) stats.closeCode = 0;
  }

  function onText(m) {
    switch (m.t) {
      case "hello":
        stats.session = m.session; stats.tag = m.tag; stats.codec = m.codec;
        stats.device = m.device;
        resize(m.width, m.height);
        setRole(m.role);
        setState("live · " + m.codec + " · " + m.device[0] + "×" + m.device[1]);
        break;
      case "role": setRole(m.role); break;
      case "viewers":
        stats.viewers = m.n;
        $("viewers").textContent = m.n + (m.n === 1 ? " viewer" : " viewers");
        break;
      case "ack":
        stats.acks[m.seq] = m.ok ? "ok" : m.code;
        if (!m.ok) note("input refused: " + m.code);
        break;
      case "error":
        stats.errors.push(m.code);
        note(m.code === "NotController" ? "watching: take control to use the phone" : "error: " + m.code);
        break;
      case "pong": stats.rttMs = Math.round(performance.now() - m.ts); break;
    }
  }

  var noteTimer = null;
  function note(text) {
    if (ended) return;
    var el = $("stream-state");
    var was = stats.state;
    el.textContent = text;
    clearTimeout(noteTimer);
    noteTimer = setTimeout(function () { if (!ended) el.textContent = was; }, 2500);
  }

  // ---- frames ----

  function resize(w, h) {
    if (!w || !h) return;
    frameW = w; frameH = h;
    stats.width = w; stats.height = h;
    if (canvas.width !== w || canvas.height !== h) { canvas.width = w; canvas.height = h; }
  }

  function onFrame(buf) {
    if (buf.byteLength < HEADER) return;
    var dv = new DataView(buf);
    var f = {
      kind: dv.getUint8(0), w: dv.getUint16(2), h: dv.getUint16(4), seq: dv.getUint32(8),
      inTag: dv.getUint32(12), inSeq: dv.getUint32(16), data: new Uint8Array(buf, HEADER)
    };
    stats.frames++;
    stats.bytes += buf.byteLength;
    if (f.kind === 1 || f.kind === 2) image(f, f.kind === 1 ? "image/png" : "image/jpeg");
    else if (f.kind === 3 || f.kind === 4) h264(f);
  }

  // Called once a frame is on the canvas: its input, if ours, closes the latencies it shows.
  function drawn(f) {
    stats.drawn++;
    if (f.inTag !== stats.tag || f.inSeq <= lastShown) return;
    lastShown = f.inSeq;
    var now = performance.now();
    for (var s in pending) {
      if (+s <= f.inSeq) {
        stats.latencies.push(Math.round((now - pending[s]) * 10) / 10);
        delete pending[s];
      }
    }
  }

  var decoding = false, waiting = null;
  function image(f, type) {
    if (waiting) stats.dropped++;
    waiting = { f: f, type: type };
    if (!decoding) pump();
  }
  function pump() {
    if (!waiting) return;
    var job = waiting;
    waiting = null;
    decoding = true;
    createImageBitmap(new Blob([job.f.data], { type: job.type })).then(function (bmp) {
      resize(job.f.w, job.f.h);
      ctx2d.drawImage(bmp, 0, 0);
      bmp.close();
      drawn(job.f);
    }, function () { stats.errors.push("DecodeFailed"); }).then(function () {
      decoding = false;
      pump();
    });
  }

  // H.264 (Annex B): configured from the SPS of each key frame; a decoder falling behind skips
  // deltas until the next key and asks for one.
  var decoder = null, codecString = null, skipping = false, shownBy = {}, ts = 0;
  function spsCodec(data) {
    for (var i = 0; i + 4 < data.length; i++) {
      if (data[i] === 0 && data[i + 1] === 0 && data[i + 2] === 1 && (data[i + 3] & 0x1f) === 7) {
        var hex = "";
        for (var j = 4; j < 7; j++) hex += ("0" + data[i + j].toString(16)).slice(-2);
        return "avc1." + hex.toUpperCase();
      }
    }
    return null;
  }
  function h264(f) {
    if (!window.VideoDecoder) return;
    var key = f.kind === 3;
    if (key) {
      var c = spsCodec(f.data);
      if (c && (c !== codecString || !decoder || decoder.state === "closed")) {
        if (decoder && decoder.state !== "closed") decoder.close();
        decoder = new VideoDecoder({
          output: function (frame) {
            var meta = shownBy[frame.timestamp];
            delete shownBy[frame.timestamp];
            ctx2d.drawImage(frame, 0, 0, canvas.width, canvas.height);
            frame.close();
            if (meta) drawn(meta);
          },
          error: function () { stats.errors.push("DecodeFailed"); codecString = null; }
        });
        decoder.configure({ codec: c, optimizeForLatency: true });
        codecString = c;
      }
      skipping = false;
    }
    if (!decoder || decoder.state !== "configured") return;
    if (!key && (skipping || decoder.decodeQueueSize > 4)) {
      if (!skipping) send({ t: "keyframe" });
      skipping = true;
      stats.dropped++;
      return;
    }
    resize(f.w, f.h);
    ts += 1;
    shownBy[ts] = { inTag: f.inTag, inSeq: f.inSeq };
    decoder.decode(new EncodedVideoChunk({ type: key ? "key" : "delta", timestamp: ts, data: f.data }));
  }

  // ---- input ----

  function controlling() { return role === "control" && !ended && frameW > 0; }

  function at(e) {
    var r = canvas.getBoundingClientRect();
    var x = Math.floor((e.clientX - r.left) / r.width * frameW);
    var y = Math.floor((e.clientY - r.top) / r.height * frameH);
    return { x: Math.max(0, Math.min(frameW - 1, x)), y: Math.max(0, Math.min(frameH - 1, y)) };
  }

  function touch(a, p) {
    return send({ t: "touch", a: a, x: p.x, y: p.y, w: frameW, h: frameH });
  }

  var finger = null, moved = null, moveQueued = false;
  function flushMove() {
    moveQueued = false;
    if (finger !== null && moved) { touch("move", moved); moved = null; }
  }
  canvas.addEventListener("pointerdown", function (e) {
    canvas.focus();
    if (!controlling() || finger !== null || e.button !== 0) return;
    e.preventDefault();
    finger = e.pointerId;
    try { canvas.setPointerCapture(e.pointerId); } catch (err) { /* not capturable */ }
    flushText();
    var s = touch("down", at(e));
    if (s) pending[s] = performance.now();
  });
  canvas.addEventListener("pointermove", function (e) {
    if (e.pointerId !== finger) return;
    moved = at(e);
    if (!moveQueued) { moveQueued = true; requestAnimationFrame(flushMove); }
  });
  function lift(e, action) {
    if (e.pointerId !== finger) return;
    flushMove();
    touch(action, at(e));
    finger = null;
  }
  canvas.addEventListener("pointerup", function (e) { lift(e, "up"); });
  canvas.addEventListener("pointercancel", function (e) { lift(e, "cancel"); });
  canvas.addEventListener("contextmenu", function (e) { e.preventDefault(); });

  // Typing: characters are gathered for a moment and sent as one text; Backspace and Enter are keys.
  var typed = "", textTimer = null;
  function flushText() {
    clearTimeout(textTimer);
    textTimer = null;
    while (typed) {
      var chunk = "", bytes = 0, chars = Array.from(typed), i = 0;
      for (; i < chars.length; i++) {
        var n = new TextEncoder().encode(chars[i]).length;
        if (bytes + n > MAX_TEXT_BYTES) break;
        chunk += chars[i]; bytes += n;
      }
      typed = chars.slice(i).join("");
      send({ t: "text", text: chunk });
    }
  }
  canvas.addEventListener("keydown", function (e) {
    if (!controlling() || e.ctrlKey || e.metaKey || e.altKey) return;
    var key = { Backspace: "del", Enter: "enter", Escape: "back" }[e.key];
    if (key) {
      e.preventDefault();
      flushText();
      send({ t: "key", key: key });
    } else if (e.key.length === 1 || Array.from(e.key).length === 1) {
      e.preventDefault();
      typed += e.key;
      if (!textTimer) textTimer = setTimeout(flushText, TEXT_BATCH_MS);
    }
  });

  var buttons = root.querySelectorAll(".keys button[data-key]");
  for (var b = 0; b < buttons.length; b++) {
    buttons[b].addEventListener("click", function () {
      flushText();
      send({ t: "key", key: this.getAttribute("data-key") });
    });
  }
  $("rotate").addEventListener("click", function () { send({ t: "rotate" }); });
  $("take-control").addEventListener("click", function () { send({ t: "control", take: true }); });
  if ($("reconnect")) $("reconnect").addEventListener("click", function () { connect(); });

  setInterval(function () { if (ws && ws.readyState === 1) ws.send(JSON.stringify({ t: "ping", ts: performance.now() })); }, 2000);

  // The frame rate, shown beside the state.
  var lastCount = 0, lastBytes = 0;
  setInterval(function () {
    var fps = stats.drawn - lastCount, bps = stats.bytes - lastBytes;
    lastCount = stats.drawn; lastBytes = stats.bytes;
    if (!ended && stats.session) {
      $("stream-rate").textContent = fps + " fps · " + Math.round(bps / 1024) + " KiB/s" +
        (stats.rttMs !== null ? " · rtt " + stats.rttMs + " ms" : "");
    }
  }, 1000);

  // ---- the console's actions on this phone ----

  function post(path, body, raw, headers) {
    var h = { "X-Console": "1" };
    if (!raw) h["Content-Type"] = "application/json";
    for (var k in headers || {}) h[k] = headers[k];
    return fetch(path, {
      method: "POST", credentials: "same-origin", headers: h,
      body: raw ? body : JSON.stringify(body)
    }).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (a) {
        if (!r.ok) throw new Error((a.Code || r.status) + ": " + (a.Message || r.statusText));
        return a;
      });
    });
  }

  var TERMINAL = { Finished: 1, Failed: 1, PartFinished: 1, Skipped: 1, Cancelled: 1 };
  // Follows a task until it ends (its JSON, polled), then hands it over.
  function follow(taskId, onEnd, item) {
    var tries = 0;
    (function poll() {
      fetch("/console/tasks/" + encodeURIComponent(taskId) + "?part=json", { credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (t) {
          if (t && item) item.setStatus(t.TaskStatus);
          if (t && TERMINAL[t.TaskStatus]) return onEnd(t);
          if (++tries < 1200) setTimeout(poll, tries < 20 ? 250 : 1000);
        }, function () { setTimeout(poll, 1000); });
    })();
  }

  function resultOf(t) {
    try { return JSON.parse(t.Result || "{}") || {}; } catch (e) { return {}; }
  }

  // One line of the activity list: what was done and how it went.
  function activity(what) {
    var list = $("activity");
    var li = document.createElement("li");
    var label = document.createElement("span");
    var status = document.createElement("span");
    label.textContent = what + " ";
    status.className = "badge busy status";
    status.textContent = "sent";
    li.appendChild(label); li.appendChild(status);
    list.insertBefore(li, list.firstChild);
    return {
      li: li,
      setStatus: function (s) {
        status.textContent = s;
        status.className = "badge status " + ({ Finished: "ok", Failed: "bad", PartFinished: "mixed" }[s] || "busy");
      },
      task: function (id) {
        li.setAttribute("data-task", id);
        var a = document.createElement("a");
        a.href = "/console/tasks/" + encodeURIComponent(id);
        a.textContent = "task";
        a.className = "muted";
        li.appendChild(document.createTextNode(" "));
        li.appendChild(a);
      },
      fail: function (e) { this.setStatus("Failed"); li.appendChild(document.createTextNode(" " + e.message)); },
      add: function (node) { li.appendChild(document.createTextNode(" ")); li.appendChild(node); }
    };
  }

  function failure(t) {
    return t.ErrorCode ? t.ErrorCode + (t.ErrorMsg ? ": " + t.ErrorMsg : "") : "";
  }

  function act(what, path, body, onEnd, raw, headers) {
    var item = activity(what);
    item.li.setAttribute("data-kind", path.split("/").pop());
    return post(path, body, raw, headers).then(function (a) {
      if (!a.TaskId) { item.setStatus("Finished"); return; }
      item.task(a.TaskId);
      follow(a.TaskId, function (t) {
        item.setStatus(t.TaskStatus);
        var why = failure(t);
        if (why) item.add(document.createTextNode(why));
        if (onEnd) onEnd(t, resultOf(t), item);
      }, item);
    }, function (e) { item.fail(e); });
  }

  var base = "/console/phones/" + encodeURIComponent(instance);
  if (consoleMode && $("command-form")) {
    $("command-form").addEventListener("submit", function (e) {
      e.preventDefault();
      var command = $("command").value;
      if (!command.trim()) return;
      var out = $("command-output");
      out.hidden = false;
      out.textContent = "$ " + command + "\n…";
      out.removeAttribute("data-task");
      act("Run " + command, base + "/command", { command: command }, function (t, r) {
        out.setAttribute("data-task", t.TaskId);
        out.setAttribute("data-status", t.TaskStatus);
        out.textContent = "$ " + command + "\n" + (r.Output !== undefined ? String(r.Output).replace(/\n$/, "") : failure(t)) +
          (r.ExitCode !== undefined ? "\n[exit " + r.ExitCode + "]" : "");
        if (r.OutputUrl) {
          var a = document.createElement("a");
          a.href = r.OutputUrl; a.textContent = "\nthe whole output";
          out.appendChild(a);
        }
      });
    });
    $("fetch-form").addEventListener("submit", function (e) {
      e.preventDefault();
      var path = $("fetch-path").value.trim();
      if (!path) return;
      act("Fetch " + path, base + "/fetch", { path: path }, function (t, r, item) {
        if (r.Url) {
          var a = document.createElement("a");
          a.href = r.Url; a.textContent = "download"; a.className = "fetched-link";
          item.add(a);
        }
      });
    });
    $("screenshot").addEventListener("click", function () {
      act("Screenshot", base + "/screenshot", {}, function (t, r) {
        if (r.Url) { var img = $("shot"); img.src = r.Url; img.hidden = false; img.setAttribute("data-task", t.TaskId); }
      });
    });
    $("viewer-link").addEventListener("click", function () {
      post(base + "/ticket", {}).then(function (a) {
        var box = $("viewer-url");
        box.hidden = false;
        box.textContent = "";
        var link = document.createElement("a");
        link.href = a.ViewPath; link.target = "_blank"; link.rel = "noopener";
        link.textContent = location.origin + a.ViewPath;
        box.appendChild(document.createTextNode("Anyone with this link can see and use the phone until its ticket expires: "));
        box.appendChild(link);
      }, function (e) { activity("Viewer link").fail(e); });
    });

    // Files dropped on the screen: an APK is installed, anything else goes to /sdcard/Download.
    var stage = $("stage");
    var depth = 0;
    stage.addEventListener("dragenter", function (e) { e.preventDefault(); depth++; stage.classList.add("dragging"); });
    stage.addEventListener("dragover", function (e) { e.preventDefault(); e.dataTransfer.dropEffect = "copy"; });
    stage.addEventListener("dragleave", function () { if (--depth <= 0) { depth = 0; stage.classList.remove("dragging"); } });
    stage.addEventListener("drop", function (e) {
      e.preventDefault();
      depth = 0;
      stage.classList.remove("dragging");
      var files = e.dataTransfer ? e.dataTransfer.files : [];
      for (var i = 0; i < files.length; i++) upload(files[i]);
    });
  }

  function upload(file) {
    var apk = /\.apk$/i.test(file.name);
    var headers = { "X-File-Name": encodeURIComponent(file.name), "Content-Type": "application/octet-stream" };
    act((apk ? "Install " : "Send ") + file.name + (apk ? "" : " to /sdcard/Download"),
        base + (apk ? "/apk" : "/file"), file, null, true, headers);
  }

  connect();
})();
