// edgehost status page: polls /status.json once a second (the session
// cookie rides along) and draws the last minutes on <canvas>. No library:
// the admin listener may have no internet, and the page forbids anything
// but its own files (Content-Security-Policy). Data is written with
// textContent only: URLs and errors in it come from clients.
"use strict";

(function () {
  const points = [];
  let last = 0;
  let windowS = 300;
  let failures = 0;
  const shownErrors = 15; // of the 50 that /status.json keeps

  const $ = (id) => document.getElementById(id);
  const css = (name) => getComputedStyle(document.documentElement).getPropertyValue(name).trim();

  function fmtNum(v) {
    if (v == null || !isFinite(v)) return "–";
    if (v >= 1e9) return (v / 1e9).toFixed(2) + "G";
    if (v >= 1e6) return (v / 1e6).toFixed(2) + "M";
    if (v >= 1e4) return (v / 1e3).toFixed(1) + "k";
    return String(Math.round(v));
  }
  function fmtBytes(v) {
    if (v == null || !isFinite(v)) return "–";
    const u = ["B", "kB", "MB", "GB", "TB"];
    let i = 0;
    while (v >= 1000 && i < u.length - 1) { v /= 1000; i++; }
    return (i === 0 ? Math.round(v) : v.toFixed(v < 10 ? 1 : 0)) + " " + u[i];
  }
  function fmtMs(v) {
    if (v == null || !isFinite(v)) return "–";
    return (v < 10 ? v.toFixed(2) : v < 100 ? v.toFixed(1) : Math.round(v)) + " ms";
  }
  function fmtPct(v) { return v == null || v < 0 ? "–" : (v * 100).toFixed(1) + " %"; }

  // niceMax rounds a chart's top up to 1, 2 or 5 times a power of ten.
  function niceMax(v) {
    if (!(v > 0)) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 5, 10]) if (v <= m * p) return m * p;
    return 10 * p;
  }

  // chart draws series (arrays of [t, value|null]) over the last windowS
  // seconds; fmt labels the y axis.
  function chart(canvas, series, opts) {
    const dpr = window.devicePixelRatio || 1;
    const w = canvas.clientWidth, h = canvas.clientHeight;
    if (w === 0 || h === 0) return;
    if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
      canvas.width = Math.round(w * dpr);
      canvas.height = Math.round(h * dpr);
    }
    const g = canvas.getContext("2d");
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, w, h);
    // The x axis spans the points there are (at least a minute, at most
    // the window): a page opened on a fresh edgehost is not a flat line.
    const now = points.length ? points[points.length - 1].t : Math.floor(Date.now() / 1000);
    const span = Math.max(60, Math.min(windowS, points.length ? now - points[0].t : 0));
    const t0 = now - span;
    let top = opts.max || 0;
    if (!opts.max) for (const s of series) for (const [, v] of s.data) if (v != null && v > top) top = v;
    top = opts.max || niceMax(top);
    const left = 50, right = 6, upper = 8, lower = 16;
    const pw = w - left - right, ph = h - upper - lower;
    const x = (t) => left + ((t - t0) / span) * pw;
    const y = (v) => upper + ph - (v / top) * ph;
    g.font = "11px system-ui, sans-serif";
    g.fillStyle = css("--muted");
    g.strokeStyle = css("--line");
    g.lineWidth = 1;
    g.textAlign = "right";
    g.textBaseline = "middle";
    for (let i = 0; i <= 2; i++) {
      const v = (top * i) / 2, yy = Math.round(y(v)) + 0.5;
      g.beginPath(); g.moveTo(left, yy); g.lineTo(w - right, yy); g.stroke();
      g.fillText(opts.fmt(v), left - 4, yy);
    }
    g.textAlign = "left";
    g.textBaseline = "bottom";
    g.fillText(span >= 120 ? "-" + Math.round(span / 60) + " min" : "-" + span + " s", left, h);
    g.textAlign = "right";
    g.fillText("now", w - right, h);
    g.lineWidth = 1.5;
    for (const s of series) {
      g.strokeStyle = css(s.color);
      g.beginPath();
      let pen = false;
      for (const [t, v] of s.data) {
        if (t < t0 || v == null) { pen = false; continue; }
        if (pen) g.lineTo(x(t), y(Math.min(v, top))); else g.moveTo(x(t), y(Math.min(v, top)));
        pen = true;
      }
      g.stroke();
    }
  }

  function draw() {
    const s = (f) => points.map((p) => [p.t, f(p)]);
    const lat = (f) => s((p) => (p.samples > 0 ? f(p) : null));
    chart($("c-rps"), [{ color: "--c1", data: s((p) => p.requests) }, { color: "--c3", data: s((p) => p.errors_5xx) }], { fmt: fmtNum });
    chart($("c-hit"), [{ color: "--c1", data: s((p) => (p.hit_ratio < 0 ? null : p.hit_ratio * 100)) }], { max: 100, fmt: (v) => v + "%" });
    chart($("c-lat"), [{ color: "--c1", data: lat((p) => p.p50_ms) }, { color: "--c2", data: lat((p) => p.p90_ms) }, { color: "--c3", data: lat((p) => p.p99_ms) }], { fmt: (v) => (v < 10 ? v.toFixed(1) : fmtNum(v)) });
    chart($("c-bw"), [{ color: "--c1", data: s((p) => p.bytes_out) }], { fmt: fmtBytes });
  }

  // cell makes a <td> holding text; cls adds classes.
  function cell(text, cls) {
    const td = document.createElement("td");
    td.textContent = text == null || text === "" ? "–" : String(text);
    if (cls) td.className = cls;
    return td;
  }
  function fill(id, rows, empty) {
    const tbody = $(id).tBodies[0];
    const cols = $(id).tHead.rows[0].cells.length;
    const out = [];
    for (const cells of rows) {
      const tr = document.createElement("tr");
      for (const c of cells) tr.appendChild(c);
      out.push(tr);
    }
    if (out.length === 0) {
      const tr = document.createElement("tr");
      const td = cell(empty, "empty");
      td.colSpan = cols;
      tr.appendChild(td);
      out.push(tr);
    }
    tbody.replaceChildren(...out);
  }

  function tables(inv, errors) {
    inv = inv || {};
    const backends = inv.backends || {};
    fill("t-backends", Object.keys(backends).sort().map((name) => {
      const b = backends[name];
      return [cell(name), cell(b.Healthy ? "healthy" : "sick", b.Healthy ? "ok" : "bad"), cell(fmtNum(b.Requests), "num"),
        cell(fmtNum(b.Errors), "num"), cell(b.ConnsOpen, "num"), cell(b.LastError, "wrap")];
    }), "no backends");
    fill("t-plugins", (inv.plugins || []).map((p) => [cell(p.name), cell(p.kind), cell(p.version),
      cell(p.state, p.state === "running" ? "ok" : "bad"), cell(p.restarts, "num"), cell(p.pid, "num"),
      cell(p.errors ? p.errors + (p.last_error ? ": " + p.last_error : "") : 0, "wrap")]), "no plugins");
    fill("t-files", (inv.files || []).slice().sort((a, b) => (a.name < b.name ? -1 : 1)).map((f) => [cell(f.name), cell(f.serving ? "yes" : "no", f.serving ? "ok" : "bad"),
      cell(fmtBytes(f.loaded_bytes), "num"), cell(f.loaded_at ? new Date(f.loaded_at).toLocaleTimeString() : ""),
      cell(f.error ? (f.error_code || "") + " " + (f.errmsg || "") : f.why, "wrap")]), "no file readers");
    fill("t-tenants", (inv.tenants || []).map((t) => [cell(t.name), cell(t.live ? t.live.version : ""), cell(t.backend),
      cell((t.busy || 0) + " / " + (t.concurrency || 0), "num"), cell(t.queued, "num"), cell(fmtNum(t.requests), "num"),
      cell(t.faults, "num"), cell(t.error || t.last_error, "wrap")]), "no tenants");
    fill("t-errors", errors.slice(-shownErrors).reverse().map((e) => [cell(new Date(e.time).toLocaleTimeString()),
      cell(e.status, e.status >= 500 ? "bad num" : "num"), cell(e.method + " " + e.url + (e.kind !== "client" ? " (" + e.kind + ")" : ""), "wrap"),
      cell(e.error, "wrap"), cell(fmtMs(e.dur_ms).replace(" ms", ""), "num")]), "no errors");
  }

  function tiles(st) {
    const p = points.length ? points[points.length - 1] : null;
    $("v-rps").textContent = p ? fmtNum(p.requests) : "–";
    $("v-hit").textContent = p ? fmtPct(p.hit_ratio) : "–";
    $("v-p50").textContent = p && p.samples ? fmtMs(p.p50_ms) : "–";
    $("v-p90").textContent = p && p.samples ? fmtMs(p.p90_ms) : "–";
    $("v-p99").textContent = p && p.samples ? fmtMs(p.p99_ms) : "–";
    $("v-bw").textContent = p ? fmtBytes(p.bytes_out) + "/s" : "–";
    $("v-5xx").textContent = p ? fmtNum(p.errors_5xx) : "–";
    $("v-conns").textContent = fmtNum(st.totals.conns);
    $("v-requests").textContent = String(st.totals.requests);
    $("v-mem").textContent = fmtBytes(st.totals.memory_bytes);
    $("v-memobj").textContent = "· " + fmtNum(st.totals.memory_objects) + " obj";
    $("note").textContent = "Latency: " + st.latency_source + ". Updated every " + st.interval_s + " s.";
  }

  async function poll() {
    try {
      const r = await fetch("/status.json" + (last ? "?since=" + last : ""), { cache: "no-store", credentials: "same-origin" });
      if (r.status === 401) { location.reload(); return; }
      if (!r.ok) throw new Error("HTTP " + r.status);
      const st = await r.json();
      windowS = st.window_s || windowS;
      for (const p of st.points) points.push(p);
      if (points.length) last = points[points.length - 1].t;
      while (points.length && points[0].t <= last - windowS) points.shift();
      failures = 0;
      $("state").textContent = "live · " + new Date(st.now * 1000).toLocaleTimeString();
      $("state").className = "state";
      tiles(st);
      tables(st.inventory, st.errors || []);
      draw();
    } catch (e) {
      failures++;
      $("state").textContent = "no answer from edgehost (" + e.message + "), retrying";
      $("state").className = "state bad";
    }
    setTimeout(poll, 1000);
  }

  window.addEventListener("resize", draw);
  poll();
})();
