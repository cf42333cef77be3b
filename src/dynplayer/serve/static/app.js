// Dynplayer web page: free-text search, "more like this", playlist continuation, the track map.
// Plain browser JavaScript, no build step. The API base is `?api=` in the page URL, else
// window.DYNPLAYER_API (config.js), else the origin that served the page. When the service
// serves several catalogs (GET /v1/catalogs), a picker chooses one; every request then names
// it in its `catalog` query parameter.
"use strict";

const params = new URLSearchParams(window.location.search);
const API = (params.get("api") || window.DYNPLAYER_API || "").replace(/\/+$/, "");
const $ = (id) => document.getElementById(id);
const seeds = new Map(); // track_id -> label, in pick order
let modelLabel = "";
let catalog = params.get("catalog") || ""; // "" = the service's default catalog
let mode = "text";

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

function withCatalog(path) {
  if (!catalog) return path;
  return `${path}${path.includes("?") ? "&" : "?"}catalog=${encodeURIComponent(catalog)}`;
}

async function call(path, body) {
  const init = body === undefined ? {} : {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
  };
  const response = await fetch(API + withCatalog(path), init);
  let data = null;
  try { data = await response.json(); } catch (_) { /* not JSON */ }
  if (!response.ok) {
    const error = new Error((data && (data.message || data.detail)) || `HTTP ${response.status}`);
    error.status = response.status;
    throw error;
  }
  return data;
}

function showError(message) {
  $("error").textContent = message || "";
  $("error").hidden = !message;
}

function label(track) {
  return `${track.name || track.track_id} — ${track.artist || "unknown artist"}`;
}

// A Spotify track id (22 base-62 characters), bare or as a spotify: URI / open.spotify.com link;
// null for other catalogs' ids (Melon song numbers, synthetic ids).
function spotifyId(trackId) {
  const m = /^(?:spotify:track:)?([0-9A-Za-z]{22})$/.exec(trackId)
    || /^https?:\/\/open\.spotify\.com\/track\/([0-9A-Za-z]{22})/.exec(trackId);
  return m ? m[1] : null;
}

function closePreviews() {
  for (const frame of document.querySelectorAll("#results iframe.spotify-embed")) frame.remove();
  for (const b of document.querySelectorAll("#results button.preview")) {
    b.textContent = "▶ preview";
    b.setAttribute("aria-expanded", "false");
  }
}

// The embed player is loaded only when asked for: one iframe, under its track, at a time.
function togglePreview(item, button, id, track) {
  const open = item.querySelector("iframe.spotify-embed");
  closePreviews();
  if (open) return;
  const frame = el("iframe", {
    class: "spotify-embed", src: `https://open.spotify.com/embed/track/${id}`,
    title: `Spotify preview: ${label(track)}`, width: "100%", height: "80", loading: "lazy",
    allow: "autoplay; clipboard-write; encrypted-media; fullscreen; picture-in-picture",
  });
  item.querySelector(".track").after(frame);
  button.textContent = "■ close preview";
  button.setAttribute("aria-expanded", "true");
}

function clearResults() {
  showError("");
  $("results-title").textContent = "";
  $("results-title").hidden = true;
  $("results").replaceChildren();
  $("welcome").hidden = false;
}

function render(title, tracks) {
  showError("");
  $("welcome").hidden = true;
  $("results-title").textContent = title;
  $("results-title").hidden = false;
  const list = $("results");
  list.replaceChildren();
  if (!tracks.length) {
    list.append(el("li", { class: "empty" }, "No tracks found."));
    return;
  }
  for (const track of tracks) {
    const id = spotifyId(track.track_id);
    const name = track.name || track.track_id;
    const title = id
      ? el("a", { class: "name", href: `https://open.spotify.com/track/${id}`, target: "_blank",
        rel: "noopener", title: `${name}: open in Spotify` }, name)
      : el("span", { class: "name", title: name }, name);
    const actions = el("span", { class: "actions" });
    const row = el("div", { class: "track" }, title,
      el("span", { class: "artist" }, track.artist || "unknown artist"),
      el("span", { class: "score" }, track.score.toFixed(3)), actions);
    const item = el("li", { "data-track-id": track.track_id }, row);
    if (id) {
      const button = el("button", { type: "button", class: "preview", "aria-expanded": "false",
        onclick: () => togglePreview(item, button, id, track) }, "▶ preview");
      actions.append(button);
    }
    actions.append(
      el("button", { type: "button", class: "more", onclick: () => similar(track) },
        "more like this"),
      el("button", { type: "button", class: "pick", onclick: () => addSeed(track) },
        "+ playlist"));
    if (track.because && track.because.length) {
      const because = el("p", { class: "because" }, "because: ");
      for (const p of track.because.slice(0, 5)) {
        because.append(el("span", { title: `similarity ${p.similarity.toFixed(3)}` },
          p.caption || p.pid));
      }
      item.append(because);
    }
    list.append(item);
  }
}

async function busy(what, work) {
  $("status").textContent = what;
  try { await work(); } catch (err) { showError(err.message); }
  finally { $("status").textContent = modelLabel; }
}

function searchText(text) {
  return busy("searching…", async () => {
    const data = await call("/v1/recommend/text", { text, k: 20 });
    // Korean loanwords are searched as the English words the captions use ("발라드" as
    // "ballad"): say so, so the list is not a surprise
    const as = data.searched_as ? ` (searched as “${data.searched_as}”)` : "";
    render(`Tracks for “${text}”${as}`, data.tracks);
  });
}

function similar(track) {
  return busy("finding similar tracks…", async () => {
    const data = await call(`/v1/tracks/${encodeURIComponent(track.track_id)}/similar?k=20`);
    render(`More like ${label(track)}`, data.tracks);
  });
}

function continuePlaylist() {
  return busy("continuing…", async () => {
    const data = await call("/v1/recommend/continue", { track_ids: [...seeds.keys()], k: 20 });
    const note = data.unknown_track_ids.length
      ? ` (unknown: ${data.unknown_track_ids.join(", ")})` : "";
    render(`Next for your ${data.seeds.length} tracks${note}`, data.tracks);
  });
}

function renderSeeds() {
  const list = $("seeds");
  list.replaceChildren();
  for (const [id, text] of seeds) {
    list.append(el("li", { "data-track-id": id }, text,
      el("button", { type: "button", "aria-label": "remove",
        onclick: () => { seeds.delete(id); renderSeeds(); } }, "×")));
  }
  $("continue-button").disabled = seeds.size === 0;
}

function addSeed(track) {
  seeds.set(track.track_id, label(track));
  renderSeeds();
}

let suggestTimer = null;
function suggest() {
  clearTimeout(suggestTimer);
  const q = $("track-input").value.trim();
  if (!q) { $("suggestions").replaceChildren(); return; }
  suggestTimer = setTimeout(async () => {
    try {
      const data = await call(`/v1/tracks/search?q=${encodeURIComponent(q)}&limit=8`);
      $("suggestions").replaceChildren(...data.tracks.map((t) =>
        el("li", { role: "option", "data-track-id": t.track_id,
          onclick: () => {
            addSeed(t);
            $("track-input").value = "";
            $("suggestions").replaceChildren();
          } }, label(t))));
    } catch (err) { showError(err.message); }
  }, 150);
}

// ---- the map of the track space (GET /v1/map) ----------------------------------------------

const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
  "#17becf", "#bcbd22", "#393b79", "#ad494a", "#637939"];
const NO_GENRE = "#a8acb4";
const map = { points: [], key: null, colour: new Map(), selected: null, loading: null,
  box: { x0: 0, x1: 1, y0: 0, y1: 1 } };

function mapXY(canvas) {
  // Point -> CSS pixel position inside the canvas: the points' bounding box scaled by one
  // factor for both axes (distances keep their proportions) to fill 90% of the canvas, centred.
  const w = canvas.clientWidth, h = canvas.clientHeight;
  const b = map.box;
  const scale = Math.min(0.9 * w / Math.max(b.x1 - b.x0, 1e-9), 0.9 * h / Math.max(b.y1 - b.y0, 1e-9));
  const cx = (b.x0 + b.x1) / 2, cy = (b.y0 + b.y1) / 2;
  return (p) => [w / 2 + (p.x - cx) * scale, h / 2 - (p.y - cy) * scale];
}

function drawMap() {
  const canvas = $("map");
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth, h = canvas.clientHeight;
  canvas.width = Math.round(w * dpr);
  canvas.height = Math.round(h * dpr);
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, w, h);
  const at = mapXY(canvas);
  // Tracks without a genre first, so the coloured ones stay visible on top.
  for (const pass of [false, true]) {
    for (const p of map.points) {
      if ((p.genre !== null) !== pass) continue;
      const [x, y] = at(p);
      ctx.fillStyle = pass ? map.colour.get(p.genre) || NO_GENRE : NO_GENRE;
      ctx.globalAlpha = 0.75;
      ctx.beginPath();
      ctx.arc(x, y, 2.6, 0, 2 * Math.PI);
      ctx.fill();
    }
  }
  ctx.globalAlpha = 1;
  if (map.selected) {
    const [x, y] = at(map.selected);
    ctx.strokeStyle = "#000";
    ctx.lineWidth = 2;
    ctx.beginPath();
    ctx.arc(x, y, 7, 0, 2 * Math.PI);
    ctx.stroke();
  }
}

function nearestPoint(event) {
  const canvas = $("map");
  const box = canvas.getBoundingClientRect();
  // Relative to the drawing area, inside the canvas' border.
  const mx = event.clientX - box.left - canvas.clientLeft;
  const my = event.clientY - box.top - canvas.clientTop;
  const at = mapXY(canvas);
  let best = null, bestD = 64; // within 8 px
  for (const p of map.points) {
    const [x, y] = at(p);
    const d = (x - mx) ** 2 + (y - my) ** 2;
    if (d < bestD) { best = p; bestD = d; }
  }
  return best;
}

function renderLegend(genres) {
  const items = genres.map((g) => el("li", {},
    el("span", { class: "swatch", style: `background:${map.colour.get(g)}` }), g));
  if (map.points.some((p) => p.genre === null)) {
    items.push(el("li", {}, el("span", { class: "swatch", style: `background:${NO_GENRE}` }),
      genres.length ? "other / no genre" : "no genre labels"));
  }
  $("map-legend").replaceChildren(...items);
}

function loadMap() {
  const key = catalog || "(default)";
  if (map.key === key && map.points.length) { drawMap(); return Promise.resolve(); }
  if (map.loading && map.key === key) return map.loading;
  map.key = key;
  map.loading = busy("loading the map…", async () => {
    const data = await call("/v1/map?limit=3000");
    if (map.key !== key) return; // the catalog changed meanwhile
    map.points = data.points;
    map.selected = null;
    const xs = data.points.map((p) => p.x), ys = data.points.map((p) => p.y);
    map.box = xs.length ? { x0: Math.min(...xs), x1: Math.max(...xs), y0: Math.min(...ys),
      y1: Math.max(...ys) } : { x0: 0, x1: 1, y0: 0, y1: 1 };
    // The most frequent genres get a colour each; the rest share the "other" grey.
    const counts = new Map();
    for (const p of data.points) if (p.genre !== null) counts.set(p.genre, (counts.get(p.genre) || 0) + 1);
    const top = [...counts.entries()].sort((a, b) => b[1] - a[1]).slice(0, PALETTE.length)
      .map(([g]) => g);
    map.colour = new Map(top.map((g, i) => [g, PALETTE[i]]));
    for (const p of map.points) if (p.genre !== null && !map.colour.has(p.genre)) p.genre = null;
    renderLegend(top);
    drawMap();
  }).finally(() => { map.loading = null; });
  return map.loading;
}

function mapHover(event) {
  const p = nearestPoint(event);
  const tip = $("map-tip");
  $("map").style.cursor = p ? "pointer" : "default";
  if (!p) { tip.hidden = true; return; }
  const box = $("map").getBoundingClientRect();
  tip.textContent = `${label(p)}${p.genre ? ` · ${p.genre}` : ""}`;
  tip.hidden = false;
  tip.style.left = `${Math.min(event.clientX - box.left + 12, box.width - 260)}px`;
  tip.style.top = `${event.clientY - box.top + 12}px`;
}

function mapClick(event) {
  const p = nearestPoint(event);
  if (!p) return;
  map.selected = p;
  drawMap();
  similar(p);
}

// ---- modes and catalogs ----------------------------------------------------------------------

function setMode(next) {
  mode = next;
  for (const m of ["text", "continue", "map", "library"]) {
    $(`${m}-panel`).hidden = m !== next;
    $(`mode-${m}`).classList.toggle("active", m === next);
  }
  // Results of one mode mean nothing in the next: start clean.
  clearResults();
  $("map-tip").hidden = true;
  $("suggestions").replaceChildren();
  if (next === "map") loadMap();
}

function describeModel(info) {
  return `model ${info.model_version}${info.text_model ? "" : " (no text model)"}`;
}

async function loadCatalogs() {
  let data = null;
  try { data = await call("/v1/catalogs"); } catch (_) { return null; } // an older service
  const select = $("catalog");
  select.replaceChildren(...data.catalogs.map((c) =>
    el("option", { value: c.name }, `${c.name} (${c.tracks.toLocaleString()} tracks)`)));
  if (!data.catalogs.some((c) => c.name === catalog)) catalog = "";
  select.value = catalog || data.default;
  $("catalog-picker").hidden = data.catalogs.length < 2;
  return data;
}

function showModel(data) {
  const name = catalog || (data && data.default);
  const info = data && data.catalogs.find((c) => c.name === name);
  if (info && info.model_version) {
    modelLabel = describeModel(info);
    $("status").textContent = modelLabel;
    return;
  }
  call("/readyz").then((r) => {
    modelLabel = describeModel(r);
    $("status").textContent = modelLabel;
  }).catch(() => { $("status").textContent = "service not ready"; });
}

window.addEventListener("DOMContentLoaded", () => {
  $("api-base").textContent = API || window.location.origin;
  $("docs-link").href = `${API}/docs`;
  $("text-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const text = $("text-input").value.trim();
    if (text) searchText(text);
  });
  for (const button of document.querySelectorAll("#examples button.example")) {
    button.addEventListener("click", () => {
      $("text-input").value = button.textContent;
      searchText(button.textContent);
    });
  }
  for (const m of ["text", "continue", "map", "library"]) {
    $(`mode-${m}`).addEventListener("click", () => setMode(m));
  }
  $("track-input").addEventListener("input", suggest);
  $("continue-button").addEventListener("click", continuePlaylist);
  $("map").addEventListener("mousemove", mapHover);
  $("map").addEventListener("mouseleave", () => { $("map-tip").hidden = true; });
  $("map").addEventListener("click", mapClick);
  window.addEventListener("resize", () => { if (mode === "map" && map.points.length) drawMap(); });
  let catalogs = null;
  $("catalog").addEventListener("change", () => {
    catalog = $("catalog").value;
    seeds.clear();
    renderSeeds();
    setMode(mode); // clears the results, reloads the map for the new catalog
    showModel(catalogs);
  });
  loadCatalogs().then((data) => { catalogs = data; showModel(data); });
});
