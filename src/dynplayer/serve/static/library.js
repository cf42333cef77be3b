// "My library" mode: answers from a listener's own library stored with the served run
// (`dynplayer library import`): free text -> a playlist from it, and an instant mix from a
// track, album or artist of it, each track with its "because". Shown only when the run has a
// library (GET /v1/library). Uses app.js's helpers (call, el, $, clearResults, showError).
"use strict";

async function loadLibraries() {
  let data = null;
  try { data = await call("/v1/library"); } catch (_) { return; } // none, or an older service
  const libs = data.libraries || [];
  $("mode-library").hidden = libs.length === 0;
  $("library").replaceChildren(...libs.map((l) =>
    el("option", { value: l.name }, `${l.name} (${l.tracks.toLocaleString()} tracks)`)));
  const first = libs[0];
  if (first) {
    const c = first.counts.status || {};
    $("library-info").textContent = `${first.tracks.toLocaleString()} tracks from `
      + `${first.source.location || first.source.kind}: ${c.matched || 0} matched, `
      + `${c.ambiguous || 0} ambiguous, ${c.unmatched || 0} unmatched.`;
  }
}

function renderLibrary(title, answer) {
  clearResults();
  $("results-title").textContent = title;
  $("results-title").hidden = false;
  const list = $("results");
  answer.items.forEach((item, i) => {
    const because = answer.because[i] || {};
    const why = el("div", { class: "because" }, because.why || "");
    for (const p of (because.playlists || []).slice(0, 2)) {
      why.append(el("span", { class: "playlist" }, ` · ${p.caption || p.pid}`));
    }
    list.append(el("li", { class: "library-track" },
      el("div", { class: "track" },
        el("span", { class: "name" }, item.title || item.id),
        el("span", { class: "artist" }, ` — ${item.artist || "unknown artist"}`)),
      why));
  });
}

async function libraryAsk(path, body, title) {
  showError("");
  $("status").textContent = "…";
  try {
    const answer = await call(path, { library: $("library").value || "default", ...body });
    const seeds = answer.resolved.length ? ` (from ${answer.resolved.join("; ")})` : "";
    renderLibrary(`${title}${seeds}`, answer);
  } catch (error) {
    clearResults();
    showError(error.message);
  } finally { $("status").textContent = modelLabel; }
}

window.addEventListener("DOMContentLoaded", () => {
  $("library-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const text = $("library-text").value.trim();
    if (text) libraryAsk("/v1/library/search", { text, k: 20 }, `From your library: ${text}`);
  });
  $("library-mix-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const seed = $("library-seed").value.trim();
    if (seed) libraryAsk("/v1/library/mix", { seeds: [seed], k: 20 }, "Instant mix");
  });
  loadLibraries();
});
