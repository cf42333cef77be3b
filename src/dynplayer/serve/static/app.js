// Dynplayer web page: free-text search, "more like this", playlist continuation.
// Plain browser JavaScript, no build step. The API base is `?api=` in the page URL, else
// window.DYNPLAYER_API (config.js), else the origin that served the page.
"use strict";

const params = new URLSearchParams(window.location.search);
const API = (params.get("api") || window.DYNPLAYER_API || "").replace(/\/+$/, "");
const $ = (id) => document.getElementById(id);
const seeds = new Map(); // track_id -> label, in pick order
let modelLabel = "";

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

async function call(path, body) {
  const init = body === undefined ? {} : {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
  };
  const response = await fetch(API + path, init);
  let data = null;
  try { data = await response.json(); } catch (_) { /* not JSON */ }
  if (!response.ok) {
    throw new Error((data && data.message) || `HTTP ${response.status}`);
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

function render(title, tracks) {
  showError("");
  $("results-title").textContent = title;
  $("results-title").hidden = false;
  const list = $("results");
  list.replaceChildren();
  if (!tracks.length) {
    list.append(el("li", {}, "No tracks found."));
    return;
  }
  for (const track of tracks) {
    const row = el("div", { class: "track" },
      el("span", { class: "name" }, track.name || track.track_id),
      el("span", { class: "artist" }, track.artist || "unknown artist"),
      el("span", { class: "score" }, track.score.toFixed(3)),
      el("button", { type: "button", class: "more", onclick: () => similar(track) },
        "more like this"),
      el("button", { type: "button", class: "pick", onclick: () => addSeed(track) },
        "+ playlist"));
    const item = el("li", { "data-track-id": track.track_id }, row);
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
    render(`Tracks for “${text}”`, data.tracks);
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

function setMode(mode) {
  const text = mode === "text";
  $("text-panel").hidden = !text;
  $("continue-panel").hidden = text;
  $("mode-text").classList.toggle("active", text);
  $("mode-continue").classList.toggle("active", !text);
}

window.addEventListener("DOMContentLoaded", () => {
  $("api-base").textContent = API || window.location.origin;
  $("docs-link").href = `${API}/docs`;
  $("text-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const text = $("text-input").value.trim();
    if (text) searchText(text);
  });
  $("mode-text").addEventListener("click", () => setMode("text"));
  $("mode-continue").addEventListener("click", () => setMode("continue"));
  $("track-input").addEventListener("input", suggest);
  $("continue-button").addEventListener("click", continuePlaylist);
  call("/readyz").then((r) => {
    modelLabel = `model ${r.model_version}${r.text_model ? "" : " (no text model)"}`;
    $("status").textContent = modelLabel;
  }).catch(() => { $("status").textContent = "service not ready"; });
});
