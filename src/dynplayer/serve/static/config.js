// Where the API lives. Empty = the same origin that serves this page (`dynplayer serve`).
// When hosting these files elsewhere, set it here or open the page with ?api=https://host/.
window.DYNPLAYER_API = window.DYNPLAYER_API || "";
