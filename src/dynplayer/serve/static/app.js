// Dynplayer web page: free-text search, "more like this", playlist continuation, the track map.
// Plain browser JavaScript, no build step. The API base is `?api=` in the page URL, else
// window.DYNPLAYER_API (config.js), else the origin that served the page. When the service
// serves several catalogs (GET /v1/catalogs), a picker chooses one; every request then names
// it in its `catalog` query parameter. The page's own URL reproduces what it shows (`?q=` a text
// search, `?similar=ID`, `?seeds=ID,ID` a continuation, `&artist=N` the variety setting), so a
// search can be shared or bookmarked and back / forward step through the searches. Playlists
// built on the page are saved in the browser (localStorage) and exported through
// POST /v1/playlists/export (M3U, CSV, JSON with Spotify URIs).
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
  for (const node of document.querySelectorAll("#results iframe.spotify-embed, " +
    "#results .preview-note")) node.remove();
  for (const b of document.querySelectorAll("#results button.preview")) {
    b.textContent = "▶ preview";
    b.setAttribute("aria-expanded", "false");
  }
}

const OEMBED = "https://open.spotify.com/oembed?url=";

// Can Spotify's player show this track? "ok", "missing" (Spotify does not know it) or
// "offline" (no network, or Spotify unreachable). Spotify's oEmbed answers 404 for a track it
// does not have; when its answer cannot be read across origins, an opaque request still tells
// a reachable Spotify from an unreachable one.
async function previewStatus(id) {
  if (navigator.onLine === false) return "offline";
  const url = OEMBED + encodeURIComponent(`https://open.spotify.com/track/${id}`);
  const timed = (init) => fetch(url, { ...init, signal: AbortSignal.timeout(8000) });
  try {
    const response = await timed({});
    return response.status === 404 || response.status === 400 ? "missing" : "ok";
  } catch (_) {
    try { await timed({ mode: "no-cors" }); return "ok"; } catch (__) { return "offline"; }
  }
}

const PREVIEW_NOTES = {
  offline: "Preview unavailable: you are offline, or Spotify cannot be reached.",
  missing: "No preview: Spotify does not have this track (removed, or not available here).",
};

// The embed player is loaded only when asked for: one iframe, under its track, at a time. When
// it cannot show anything (offline, or no such track on Spotify) a note says so instead of an
// empty grey box.
function togglePreview(item, button, id, track) {
  const open = item.querySelector("iframe.spotify-embed, .preview-note");
  closePreviews();
  if (open) return;
  button.textContent = "■ close preview";
  button.setAttribute("aria-expanded", "true");
  const note = (status) => {
    const p = el("p", { class: "preview-note", role: "status", "data-status": status },
      PREVIEW_NOTES[status]);
    item.querySelector(".track").after(p);
    return p;
  };
  if (navigator.onLine === false) { note("offline"); return; }
  const frame = el("iframe", {
    class: "spotify-embed", src: `https://open.spotify.com/embed/track/${id}`,
    title: `Spotify preview: ${label(track)}`, width: "100%", height: "80", loading: "lazy",
    allow: "autoplay; clipboard-write; encrypted-media; fullscreen; picture-in-picture",
  });
  item.querySelector(".track").after(frame);
  previewStatus(id).then((status) => {
    if (status === "ok" || !frame.isConnected) return;
    frame.hidden = true;
    note(status);
  });
}

function showVerdict(message) {
  $("verdict").textContent = message || "";
  $("verdict").hidden = !message;
}

function clearResults() {
  showError("");
  showVerdict("");
  $("results-title").textContent = "";
  $("results-title").hidden = true;
  $("results").replaceChildren();
  $("results").hidden = false;
  $("show-anyway").hidden = true;
  $("add-all").hidden = true;
  $("welcome").hidden = false;
  shown = [];
}

let shown = []; // the tracks on screen, for "+ all to playlist"

function render(title, tracks) {
  showError("");
  showVerdict("");
  $("welcome").hidden = true;
  $("results-title").textContent = title;
  $("results-title").hidden = false;
  $("show-anyway").hidden = true;
  const list = $("results");
  list.hidden = false;
  list.replaceChildren();
  shown = tracks;
  $("add-all").hidden = !tracks.length;
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
    } else {
      actions.append(el("span", { class: "no-preview",
        title: "This catalog's tracks are not Spotify tracks: there is no preview to play" },
      "no preview"));
    }
    actions.append(
      el("button", { type: "button", class: "more", onclick: () => similar(track) },
        "more like this"),
      el("button", { type: "button", class: "pick", onclick: () => addSeed(track) },
        "+ playlist"));
    if (track.because && track.because.length) {
      const because = el("p", { class: "because" }, "because: ");
      // playlists sharing a caption ("summer" x4) are named once, with how many they are
      const captions = new Map();
      for (const p of track.because) {
        const key = p.caption || p.pid;
        if (captions.has(key)) captions.get(key).n += 1;
        else captions.set(key, { p, n: 1 });
      }
      for (const [text, { p, n }] of [...captions].slice(0, 5)) {
        because.append(el("span", { title: `similarity ${p.similarity.toFixed(3)}` +
          (n > 1 ? `; ${n} playlists with this caption` : "") }, n > 1 ? `${text} ×${n}` : text));
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

// ---- what the page shows, in its URL ---------------------------------------------------------

function variety() {
  const v = $("variety").value;
  return v === "" ? null : Number(v);
}

// The page URL for a search: the page's own settings (?api=, ?catalog=) kept, the search's
// parameters replaced.
function pageUrl(search) {
  const url = new URL(window.location.href);
  for (const key of ["q", "similar", "seeds", "artist"]) url.searchParams.delete(key);
  if (catalog) url.searchParams.set("catalog", catalog); else url.searchParams.delete("catalog");
  for (const [key, value] of Object.entries(search)) url.searchParams.set(key, value);
  if (variety() !== null) url.searchParams.set("artist", String(variety()));
  return url;
}

function remember(search, push) {
  const url = pageUrl(search).toString();
  if (url === window.location.href) return;
  if (push) history.pushState(search, "", url); else history.replaceState(search, "", url);
}

function searchText(text, push = true) {
  remember({ q: text }, push);
  return busy("searching…", async () => {
    const body = { text, k: 20 };
    if (variety() !== null) body.max_per_artist = variety();
    const data = await call("/v1/recommend/text", body);
    // Korean loanwords are searched as the English words the captions use ("발라드" as
    // "ballad"): say so, so the list is not a surprise
    const as = data.searched_as ? ` (searched as “${data.searched_as}”)` : "";
    render(`Tracks for “${text}”${as}`, data.tracks);
    const confidence = typeof data.confidence === "number"
      ? ` (confidence ${data.confidence.toFixed(2)})` : "";
    if (data.match === "weak") {
      showVerdict(`Weak match: the playlists nearest to “${text}” are only loosely related` +
        `${confidence}, so these tracks may miss what you meant.`);
    } else if (data.match === "nothing") {
      // noise or words the model never saw: the nearest tracks are not an answer
      showVerdict(`Nothing close to “${text}” in this catalog${confidence}: the words are ` +
        "unknown to it, or too far from every playlist title. Try other words.");
      $("results").hidden = true;
      $("add-all").hidden = true;
      $("show-anyway").hidden = !data.tracks.length;
    }
  });
}

function similar(track, push = true) {
  remember({ similar: track.track_id }, push);
  return busy("finding similar tracks…", async () => {
    const cap = variety() === null ? "" : `&max_per_artist=${variety()}`;
    const data = await call(
      `/v1/tracks/${encodeURIComponent(track.track_id)}/similar?k=20${cap}`);
    render(`More like ${label(track)}`, data.tracks);
  });
}

function continuePlaylist(push = true) {
  remember({ seeds: [...seeds.keys()].join(",") }, push);
  return busy("continuing…", async () => {
    const body = { track_ids: [...seeds.keys()], k: 20 };
    if (variety() !== null) body.max_per_artist = variety();
    const data = await call("/v1/recommend/continue", body);
    const note = data.unknown_track_ids.length
      ? ` (unknown: ${data.unknown_track_ids.join(", ")})` : "";
    render(`Next for your ${data.seeds.length} tracks${note}`, data.tracks);
  });
}

async function lookup(ids) {
  const data = await call(`/v1/tracks/lookup?ids=${encodeURIComponent(ids.join(","))}`);
  return data.tracks;
}

// Show what the URL asks for (on load, and on back / forward); `push` false: no new entry.
async function applyUrl() {
  const p = new URLSearchParams(window.location.search);
  $("variety").value = p.has("artist") ? p.get("artist") : "";
  if ($("variety").selectedIndex < 0) $("variety").value = "";
  if (p.get("q")) {
    if (mode !== "text") setMode("text", false);
    $("text-input").value = p.get("q");
    return searchText(p.get("q"), false);
  }
  if (p.get("similar")) {
    const id = p.get("similar");
    let track = { track_id: id, name: null, artist: null };
    try { track = (await lookup([id]))[0] || track; } catch (_) { /* the answer will say */ }
    if (mode === "continue") setMode("text", false);
    return similar(track, false);
  }
  if (p.get("seeds")) {
    const ids = p.get("seeds").split(",").filter(Boolean);
    setMode("continue", false);
    seeds.clear();
    try {
      for (const t of await lookup(ids)) seeds.set(t.track_id, label(t));
    } catch (err) { showError(err.message); }
    for (const id of ids) if (!seeds.has(id)) seeds.set(id, id);
    renderSeeds();
    return continuePlaylist(false);
  }
  if (mode !== "map") setMode(mode, false);
  return null;
}

// ---- your playlist: saved in this browser, exported by the API ------------------------------

const SAVED_KEY = "dynplayer.playlists";

function savedPlaylists() {
  try { return JSON.parse(localStorage.getItem(SAVED_KEY) || "{}"); } catch (_) { return {}; }
}

function renderSaved() {
  const saved = savedPlaylists();
  const names = Object.keys(saved).sort();
  $("saved-title").hidden = names.length === 0;
  $("saved").replaceChildren(...names.map((name) => {
    const p = saved[name];
    const where = p.catalog ? `, ${p.catalog}` : "";
    return el("li", { "data-name": name },
      el("span", { class: "saved-name" }, `${name} (${p.tracks.length} tracks${where})`),
      el("button", { type: "button", class: "secondary open",
        onclick: () => openSaved(name) }, "open"),
      el("button", { type: "button", class: "secondary", "aria-label": `delete ${name}`,
        onclick: () => {
          const all = savedPlaylists();
          delete all[name];
          localStorage.setItem(SAVED_KEY, JSON.stringify(all));
          renderSaved();
        } }, "×"));
  }));
}

function savePlaylist() {
  const name = $("playlist-name").value.trim() || "My playlist";
  $("playlist-name").value = name;
  const all = savedPlaylists();
  all[name] = { catalog, saved: new Date().toISOString(),
    tracks: [...seeds].map(([track_id, text]) => ({ track_id, label: text })) };
  localStorage.setItem(SAVED_KEY, JSON.stringify(all));
  renderSaved();
  $("status").textContent = `saved “${name}”`;
}

function openSaved(name) {
  const p = savedPlaylists()[name];
  if (!p) return;
  seeds.clear();
  for (const t of p.tracks) seeds.set(t.track_id, t.label);
  $("playlist-name").value = name;
  renderSeeds();
}

async function exportPlaylist(format) {
  const name = $("playlist-name").value.trim() || "My playlist";
  await busy("exporting…", async () => {
    const response = await fetch(API + withCatalog("/v1/playlists/export"), {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ name, track_ids: [...seeds.keys()], format }),
    });
    if (!response.ok) {
      let message = `HTTP ${response.status}`;
      try { message = (await response.json()).message || message; } catch (_) { /* no JSON */ }
      throw new Error(message);
    }
    const disposition = response.headers.get("Content-Disposition") || "";
    const file = (/filename="([^"]+)"/.exec(disposition) || [])[1] || `playlist.${format}`;
    const link = el("a", { href: URL.createObjectURL(await response.blob()), download: file });
    document.body.append(link);
    link.click();
    link.remove();
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
  for (const id of ["continue-button", "save-playlist"]) $(id).disabled = seeds.size === 0;
  for (const b of document.querySelectorAll("button.export-as")) b.disabled = seeds.size === 0;
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
      // an answer to an older query (a slower response overtaken by typing) is dropped
      if ($("track-input").value.trim() !== q) return;
      // say when nothing matched, and when the list is only the closest names
      const note = !data.tracks.length ? `no track matches “${q}”`
        : data.near_misses ? `no exact match for “${q}”; close names:` : null;
      $("suggestions").replaceChildren(
        ...(note ? [el("li", { class: "note", role: "presentation" }, note)] : []),
        ...data.tracks.map((t) =>
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

function setMode(next, fromUser = true) {
  mode = next;
  if (fromUser) remember({}, true); // a new mode starts clean, in the URL too
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
  $("continue-button").addEventListener("click", () => continuePlaylist());
  $("save-playlist").addEventListener("click", savePlaylist);
  for (const b of document.querySelectorAll("button.export-as")) {
    b.addEventListener("click", () => exportPlaylist(b.dataset.format));
  }
  $("add-all").addEventListener("click", () => { for (const t of shown) addSeed(t); });
  $("show-anyway").addEventListener("click", () => {
    $("results").hidden = false;
    $("show-anyway").hidden = true;
    $("add-all").hidden = !shown.length;
  });
  // A new variety setting answers the search on screen again (in the same history entry).
  $("variety").addEventListener("change", () => {
    const p = new URLSearchParams(window.location.search);
    if (p.get("q") || p.get("similar") || p.get("seeds")) {
      const url = pageUrl(Object.fromEntries([...p].filter(([k]) => k === "q" ||
        k === "similar" || k === "seeds")));
      history.replaceState(null, "", url.toString());
      applyUrl();
    }
  });
  window.addEventListener("popstate", () => { applyUrl(); });
  renderSaved();
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
  loadCatalogs().then((data) => { catalogs = data; showModel(data); applyUrl(); });
});
