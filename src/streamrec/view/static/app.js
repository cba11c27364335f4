// streamrec view: the page. Plain JavaScript, no build step; plotly.js is loaded after the
// episode list is on screen, so a large dataset paints first and plots come a moment later.
"use strict";
(() => {
  const DS = JSON.parse(document.getElementById("dataset").textContent);
  const fps = DS.fps;
  const $ = (id) => document.getElementById(id);
  const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
  const clamp = (v, lo, hi) => Math.max(lo, Math.min(hi, v));
  const positionOf = new Map(DS.episodes.index.map((index, pos) => [index, pos]));

  // Everything the page knows; tests and the browser console read it as window.streamrecView.
  const view = {
    dataset: DS, position: null, episode: null, frame: 0, playing: false, cams: [],
    plotly: null, plots: [], health: null, speed: 1, loading: null,
    seek: (f) => seek(f), select: (p, f) => select(p, f), play: () => play(), pause: () => pause(),
    // True when every camera shows the current frame (no seek pending, a frame decoded).
    settled: () => view.cams.every((c) => c.error || (c.ready && !c.video.seeking && c.video.readyState >= 2)),
  };
  window.streamrecView = view;

  // -- the episode list -----------------------------------------------------------------------------

  function renderHeader() {
    $("dataset-name").textContent = DS.name;
    const frames = DS.episodes.length.reduce((a, b) => a + b, 0);
    const cams = DS.cameras.map((c) => c.name).join(", ") || "no cameras";
    $("dataset-facts").textContent = `${DS.episodes.index.length} episodes · ${frames} frames at ${fps} fps · ${cams}` +
      (DS.robot_type ? ` · ${DS.robot_type}` : "");
  }

  function renderList() {
    const E = DS.episodes;
    const rows = [];
    for (let i = 0; i < E.index.length; i++) {
      const d = E.dropped[i];
      rows.push(`<tr data-pos="${i}"><td class="num">${E.index[i]}</td>` +
        `<td class="num">${E.length[i]} <small>${(E.length[i] / fps).toFixed(1)} s</small></td>` +
        `<td class="task" title="${esc(E.tasks[i])}">${esc(E.tasks[i])}</td>` +
        `<td class="num drops${d ? " has-drops" : ""}">${d == null ? "–" : d}</td>` +
        `<td class="status status-pending">…</td></tr>`);
    }
    const tbody = $("episodes").tBodies[0];
    tbody.innerHTML = rows.join("");
    tbody.addEventListener("click", (ev) => {
      const tr = ev.target.closest("tr");
      if (tr) location.hash = `e=${tr.dataset.pos}&f=0`;
    });
    performance.mark("streamrec-episodes-listed");
  }

  // -- one episode ------------------------------------------------------------------------------------

  async function select(position, frame = 0) {
    position = clamp(position | 0, 0, DS.episodes.index.length - 1);
    if (position === view.position) { seek(frame); return; }
    pause();
    view.position = position;
    const token = {};
    view.loading = token;
    document.querySelectorAll("#episodes tr.selected").forEach((tr) => tr.classList.remove("selected"));
    const row = $("episodes").tBodies[0].rows[position];
    row.classList.add("selected");
    row.scrollIntoView({ block: "nearest" });
    $("episode-title").textContent = `Episode ${DS.episodes.index[position]} — loading…`;
    const res = await fetch(`/api/episode/${position}`);
    if (view.loading !== token) return;  // another episode was chosen meanwhile
    if (!res.ok) { $("episode-title").textContent = `Episode ${DS.episodes.index[position]}: ${await res.text()}`; return; }
    const ep = await res.json();
    if (view.loading !== token) return;
    view.episode = ep;
    view.frame = clamp(frame, 0, Math.max(0, ep.length - 1));
    $("episode-title").textContent = `Episode ${ep.index} · ${ep.length} frames (${(ep.length / fps).toFixed(2)} s)` +
      (ep.tasks.length ? ` · ${ep.tasks.join("; ")}` : "");
    const scrubber = $("scrubber");
    scrubber.max = Math.max(0, ep.length - 1);
    renderCameras(ep);
    renderTimeline(ep);
    renderPlots();
    markFindings();
    seek(view.frame);
  }

  function renderCameras(ep) {
    for (const c of view.cams) { c.video.removeAttribute("src"); c.video.load(); }
    const box = $("cameras");
    box.innerHTML = "";
    view.cams = ep.cameras.map((cam) => {
      const fig = document.createElement("figure");
      fig.className = "camera";
      fig.dataset.key = cam.key;
      const video = document.createElement("video");
      video.muted = true;
      video.playsInline = true;
      video.preload = "auto";
      const drops = cam.dropped ? ` · <span class="note">${cam.dropped} dropped</span>` : "";
      fig.innerHTML = `<figcaption><b>${esc(cam.name)}</b><span>${esc(cam.codec || "")} ${esc(cam.pix_fmt || "")}</span>${drops}</figcaption>`;
      fig.prepend(video);
      const c = { key: cam.key, name: cam.name, video, from: cam.from, ready: false, error: null, fig, preview: cam.preview };
      video.addEventListener("loadedmetadata", () => { c.ready = true; if (!view.playing) video.currentTime = target(c, view.frame); });
      video.addEventListener("error", () => {
        if (!video.getAttribute("src")) return;  // the element was emptied on purpose
        if (!c.previewAsked) {
          // info.json may be wrong about the codec: ask for a preview made from what the file really holds.
          c.previewAsked = true;
          c.ready = false;
          note(fig, "the browser cannot play this file; transcoding a preview");
          const wait = document.createElement("div");
          wait.className = "wait";
          fig.append(wait);
          pollPreview(c, `${cam.preview_status}?unplayable=1`, wait, view.loading);
          return;
        }
        c.error = video.error ? `media error ${video.error.code}` : "media error";
        note(fig, c.error);
      });
      if (cam.is_depth) fig.insertAdjacentHTML("beforeend", '<div class="depth-legend" title="near → far"></div>');
      if (cam.error) {
        c.error = cam.error;
        note(fig, cam.error);
      } else if (cam.preview) {
        c.previewAsked = true;
        note(fig, `preview: ${cam.preview.reason}`);
        const wait = document.createElement("div");
        wait.className = "wait";
        wait.textContent = "transcoding a preview…";
        fig.append(wait);
        pollPreview(c, cam.preview.status, wait, view.loading);
      } else {
        video.src = cam.src;
      }
      box.append(fig);
      return c;
    });
  }

  function note(fig, text) {
    const cap = fig.querySelector("figcaption");
    cap.insertAdjacentHTML("beforeend", `<span class="note">${esc(text)}</span>`);
  }

  async function pollPreview(c, url, wait, token) {
    while (view.loading === token) {
      const res = await fetch(url);
      const s = res.ok ? await res.json() : await res.text();
      if (!res.ok) { wait.textContent = `no preview: ${JSON.stringify(s)}`; c.error = "no preview"; return; }
      if (s.state === "ready") {
        wait.remove();
        c.from = 0;  // a preview holds only this episode, from time 0
        c.video.src = s.src;
        return;
      }
      if (s.state === "failed") { wait.textContent = `preview failed: ${s.error}`; c.error = s.error; return; }
      wait.textContent = `transcoding a preview… ${s.done} / ${s.total} frames`;
      await new Promise((r) => setTimeout(r, 400));
    }
  }

  // The middle of frame k's display interval: a seek there shows frame k whatever the rounding.
  const target = (c, frame) => c.from + (frame + 0.5) / fps;

  function seek(frame) {
    const ep = view.episode;
    if (!ep) return;
    view.frame = clamp(Math.round(frame), 0, Math.max(0, ep.length - 1));
    if (view.playing) { pause(); }
    for (const c of view.cams) if (c.ready) c.video.currentTime = target(c, view.frame);
    showFrame(true);
  }

  function play() {
    const ep = view.episode;
    if (!ep || view.playing) return;
    if (view.frame >= ep.length - 1) seek(0);
    view.playing = true;
    $("play").textContent = "Pause";
    view.clock = { start: performance.now(), frame: view.frame };
    for (const c of view.cams) {
      if (!c.ready) continue;
      c.video.currentTime = target(c, view.frame);
      c.video.playbackRate = view.speed;
      c.video.play().catch(() => {});
    }
    requestAnimationFrame(tick);
  }

  function pause() {
    if (!view.playing) return;
    view.playing = false;
    $("play").textContent = "Play";
    for (const c of view.cams) c.video.pause();
    // Land every camera exactly on the frame the cursor shows.
    for (const c of view.cams) if (c.ready) c.video.currentTime = target(c, view.frame);
    showFrame(true);
  }

  // While playing, the first playing camera is the clock; the others follow it. Small drift is
  // corrected by playback rate (no visible jump), a large one by a seek.
  function tick() {
    if (!view.playing) return;
    const ep = view.episode;
    const master = view.cams.find((c) => c.ready && !c.error && !c.video.paused);
    const t = master ? master.video.currentTime - master.from
      : view.clock.frame / fps + (performance.now() - view.clock.start) / 1000 * view.speed;
    if (t >= ep.length / fps || (master && master.video.ended)) {
      view.frame = Math.max(0, ep.length - 1);
      pause();
      return;
    }
    for (const c of view.cams) {
      if (c === master || !c.ready || c.error) continue;
      const drift = c.video.currentTime - (c.from + t);
      if (Math.abs(drift) > 0.25) c.video.currentTime = c.from + t;
      else c.video.playbackRate = view.speed * (1 - clamp(drift * 2, -0.1, 0.1));
    }
    const f = clamp(Math.floor(t * fps), 0, ep.length - 1);
    if (f !== view.frame) { view.frame = f; showFrame(false); }
    requestAnimationFrame(tick);
  }

  let lastPlotUpdate = 0;
  function showFrame(exact) {
    const ep = view.episode;
    const f = view.frame;
    $("scrubber").value = f;
    $("clock").textContent = `frame ${f} / ${ep.length} · ${(f / fps).toFixed(2)} s`;
    $("cursor").style.left = `${ep.length > 1 ? (100 * f) / (ep.length - 1) : 0}%`;
    const now = performance.now();
    if (exact || now - lastPlotUpdate > 120) { lastPlotUpdate = now; moveCursorOnPlots(f); }
    if (exact) history.replaceState(null, "", `#e=${view.position}&f=${f}`);
  }

  // -- timeline: drops, adaptations, findings ----------------------------------------------------------

  function renderTimeline(ep) {
    const tl = $("timeline");
    tl.querySelectorAll(".mark").forEach((m) => m.remove());
    const at = (row) => `${ep.length > 1 ? (100 * row) / (ep.length - 1) : 0}%`;
    const legend = [];
    let slots = 0, adaptations = 0;
    for (const cam of ep.cameras) {
      if (cam.dropped_slots) {
        for (const row of cam.dropped_slots) {
          tl.insertAdjacentHTML("beforeend", `<span class="mark drop" data-frame="${row}" data-camera="${esc(cam.key)}" ` +
            `style="left:${at(row)}" title="${esc(cam.name)}: frame ${row} dropped (repeats frame ${row - 1})"></span>`);
          slots++;
        }
      } else if (cam.dropped) {
        legend.push(`<span class="drop-count" data-camera="${esc(cam.key)}">${esc(cam.name)}: ${cam.dropped} frame(s) dropped ` +
          `(positions not recorded)</span>`);
      }
      for (const [row, what] of cam.adaptations || []) {
        tl.insertAdjacentHTML("beforeend", `<span class="mark adaptation" data-frame="${row}" data-camera="${esc(cam.key)}" ` +
          `style="left:${at(row)}" title="${esc(cam.name)} at frame ${row}: ${esc(what)}"></span>`);
        adaptations++;
      }
    }
    if (slots) legend.unshift(`<span class="key-drop">${slots} dropped frame(s)</span>`);
    if (adaptations) legend.unshift(`<span class="key-adaptation">${adaptations} encoder adaptation(s)</span>`);
    if (!legend.length) legend.push(DS.drops_recorded ? "no frames dropped" : "this dataset does not record dropped frames");
    $("timeline-legend").innerHTML = legend.join(" · ");
  }

  // -- plots --------------------------------------------------------------------------------------------

  function loadPlotly() {
    const s = document.createElement("script");
    s.src = "/static/plotly.min.js";
    s.onload = () => { view.plotly = window.Plotly; renderPlots(); };
    document.head.append(s);
  }

  function renderPlots() {
    const box = $("plots");
    const ep = view.episode;
    if (!ep) return;
    if (!view.plotly) {
      box.innerHTML = ep.series.length ? '<div class="plot-loading">loading the charting library…</div>' : "";
      return;
    }
    for (const p of view.plots) view.plotly.purge(p);
    box.innerHTML = "";
    const x = Array.from({ length: ep.length }, (_, i) => i);
    view.plots = ep.series.map((s) => {
      const div = document.createElement("div");
      div.className = "plot";
      div.dataset.feature = s.name;
      box.append(div);
      const traces = s.values.map((y, d) => ({ x, y, name: s.names[d], type: "scatter", mode: "lines", line: { width: 1.5 } }));
      view.plotly.newPlot(div, traces, {
        title: { text: s.name, font: { size: 13 } }, margin: { l: 50, r: 10, t: 30, b: 30 },
        xaxis: { title: { text: "frame" }, range: [0, Math.max(1, ep.length - 1)] }, showlegend: s.names.length <= 16,
        shapes: [{ type: "line", x0: view.frame, x1: view.frame, yref: "paper", y0: 0, y1: 1, line: { color: "#2a5bd7", width: 2 } }],
      }, { displaylogo: false, responsive: true });
      div.on("plotly_click", (d) => { if (d.points && d.points.length) seek(d.points[0].x); });
      return div;
    });
  }

  function moveCursorOnPlots(f) {
    if (!view.plotly) return;
    for (const div of view.plots) view.plotly.relayout(div, { "shapes[0].x0": f, "shapes[0].x1": f });
  }

  // -- verify's findings ----------------------------------------------------------------------------

  async function pollHealth() {
    for (;;) {
      let s;
      try { s = await (await fetch("/api/verify")).json(); } catch (e) { s = { state: "failed", error: String(e) }; }
      if (s.state !== "running") { view.health = s; renderHealth(s); return; }
      await new Promise((r) => setTimeout(r, 1000));
    }
  }

  function renderHealth(s) {
    const summary = $("health-summary");
    summary.classList.remove("pending");
    if (s.state !== "done") {
      summary.textContent = s.state === "off" ? "verify: off" : "verify: failed";
      $("findings-state").textContent = s.error || "verify did not run";
      return;
    }
    const r = s.report;
    const sum = r.summary;
    summary.className = sum.errors ? "status-error" : sum.warnings ? "status-warning" : "status-ok";
    summary.textContent = `verify: ${sum.healthy ? "healthy" : "problems found"} (${sum.errors} error(s), ${sum.warnings} warning(s))`;
    // Worst status per episode over its cameras; episodes verify has no row for are judged by findings.
    const rank = { ok: 0, info: 0, warning: 1, error: 2 };
    const worst = new Map();
    for (const row of r.rows) worst.set(row.episode, Math.max(worst.get(row.episode) ?? 0, rank[row.status] ?? 0));
    for (const f of r.findings) if (f.episode != null) worst.set(f.episode, Math.max(worst.get(f.episode) ?? 0, rank[f.severity] ?? 0));
    const names = ["ok", "warning", "error"];
    const rows = $("episodes").tBodies[0].rows;
    for (let i = 0; i < rows.length; i++) {
      const status = names[worst.get(DS.episodes.index[i]) ?? 0];
      const cell = rows[i].cells[4];
      cell.textContent = status;
      cell.className = `status status-${status}`;
    }
    $("findings-state").textContent = r.findings.length ? `${r.findings.length} finding(s)${s.cached ? " (cached result)" : ""}` :
      `no findings${s.cached ? " (cached result)" : ""}`;
    $("findings-list").innerHTML = r.findings.map((f) => {
      const pos = f.episode == null ? undefined : positionOf.get(f.episode);
      const where = [f.episode != null ? `episode ${f.episode}` : "", f.camera ? f.camera.replace(/^observation\.images\./, "") : "",
        f.episode == null && f.file ? f.file : ""].filter(Boolean).join(" · ");
      const link = pos === undefined ? "" : `<a href="#e=${pos}&f=0" data-pos="${pos}">${esc(where)} · 0.00 s</a>`;
      return `<li class="sev-${esc(f.severity)}" data-episode="${f.episode ?? ""}"><span class="sev">${esc(f.severity)}</span>` +
        `<code>${esc(f.code)}</code>${link || (where ? ` <span>${esc(where)}</span>` : "")}<div>${esc(f.message)}</div></li>`;
    }).join("");
    markFindings();
  }

  // Findings of the shown episode: highlighted in the list and marked at the episode's start.
  function markFindings() {
    const ep = view.episode;
    const tl = $("timeline");
    tl.querySelectorAll(".mark.finding").forEach((m) => m.remove());
    if (!ep || !view.health || view.health.state !== "done") return;
    document.querySelectorAll("#findings-list li").forEach((li) => li.classList.toggle("here", li.dataset.episode === String(ep.index)));
    const mine = view.health.report.findings.filter((f) => f.episode === ep.index);
    if (mine.length) {
      const title = mine.map((f) => `${f.severity} ${f.code}: ${f.message}`).join("\n");
      tl.insertAdjacentHTML("beforeend", `<span class="mark finding" data-frame="0" style="left:0%" title="${esc(title)}"></span>`);
    }
  }

  // -- wiring ---------------------------------------------------------------------------------------------

  function fromHash() {
    const h = new URLSearchParams(location.hash.slice(1));
    const pos = h.has("e") ? parseInt(h.get("e"), 10) : 0;
    const f = h.has("f") ? parseInt(h.get("f"), 10) : 0;
    if (DS.episodes.index.length) select(Number.isFinite(pos) ? pos : 0, Number.isFinite(f) ? f : 0);
  }

  function wire() {
    $("play").addEventListener("click", () => (view.playing ? pause() : play()));
    $("prev").addEventListener("click", () => seek(view.frame - 1));
    $("next").addEventListener("click", () => seek(view.frame + 1));
    $("scrubber").addEventListener("input", (ev) => seek(parseInt(ev.target.value, 10)));
    $("speed").addEventListener("change", (ev) => {
      view.speed = parseFloat(ev.target.value);
      for (const c of view.cams) c.video.playbackRate = view.speed;
    });
    $("timeline").addEventListener("click", (ev) => {
      const ep = view.episode;
      if (!ep) return;
      const mark = ev.target.closest(".mark");
      if (mark) { seek(parseInt(mark.dataset.frame, 10)); return; }
      const box = ev.currentTarget.getBoundingClientRect();
      seek(Math.round(((ev.clientX - box.left) / box.width) * (ep.length - 1)));
    });
    window.addEventListener("hashchange", fromHash);
    document.addEventListener("keydown", (ev) => {
      if (ev.target.tagName === "INPUT" || ev.target.tagName === "SELECT") return;
      if (ev.key === " ") { ev.preventDefault(); view.playing ? pause() : play(); }
      else if (ev.key === "ArrowLeft") seek(view.frame - 1);
      else if (ev.key === "ArrowRight") seek(view.frame + 1);
    });
  }

  renderHeader();
  renderList();
  wire();
  fromHash();
  // After the list has painted: the charting library (about 5 MB) and the health check.
  requestAnimationFrame(() => setTimeout(() => { loadPlotly(); pollHealth(); }, 0));
})();
