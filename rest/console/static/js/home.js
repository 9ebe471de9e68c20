// Home: upload, and the newest images, refreshed while analyses are running.
import { getJson } from "./api.js";
import { imageCard } from "./cards.js";
import { h, pageHeading } from "./dom.js";
import { uploadPanel } from "./upload.js";

const PAGE_SIZE = 24;
const MAX_REFRESH = 100; // the most rows one refresh reads back (the listing's own limit)
const BUSY_REFRESH_MS = 2000;
const IDLE_REFRESH_MS = 10000;

export function render(main, { notify }) {
  const list = h("ul", { class: "cards", "aria-label": "Recent images" });
  const status = h("p", { class: "muted", role: "status" });
  const more = h("button", { type: "button", class: "secondary", hidden: true, text: "Show older images" });
  const state = { items: [], next: null, timer: null, stopped: false, drawn: "" };

  function draw() {
    const drawn = JSON.stringify([state.items, state.next]);
    if (drawn === state.drawn) return; // unchanged: keep the cards (and keyboard focus) as they are
    state.drawn = drawn;
    list.replaceChildren(...state.items.map(imageCard));
    more.hidden = !state.next;
    const busy = state.items.filter((i) => i.status === "queued" || i.status === "processing").length;
    if (!state.items.length) status.textContent = "No image yet: upload one above.";
    else status.textContent = busy ? `${busy} image(s) being analysed; this list updates by itself.` : "";
  }

  async function load(cursor, limit) {
    const query = new URLSearchParams({ limit: String(limit) });
    if (cursor) query.set("cursor", cursor);
    return getJson(`/images?${query}`);
  }

  // Reads back as many rows as are shown, so statuses further down update too.
  async function refresh() {
    try {
      const page = await load(null, Math.min(MAX_REFRESH, Math.max(PAGE_SIZE, state.items.length)));
      if (state.stopped) return;
      state.items = page.images;
      state.next = page.next;
      draw();
    } catch (error) {
      notify(error.message, error.needsKey);
    }
    schedule();
  }

  function schedule() {
    if (state.stopped) return;
    clearTimeout(state.timer);
    const busy = state.items.some((i) => i.status === "queued" || i.status === "processing");
    state.timer = setTimeout(refresh, busy ? BUSY_REFRESH_MS : IDLE_REFRESH_MS);
  }

  more.addEventListener("click", async () => {
    try {
      const page = await load(state.next, PAGE_SIZE);
      state.items = state.items.concat(page.images);
      state.next = page.next;
      draw();
    } catch (error) {
      notify(error.message, error.needsKey);
    }
  });

  const uploads = uploadPanel({
    onUploaded: () => { clearTimeout(state.timer); state.timer = setTimeout(refresh, 300); },
    onError: (message) => notify(message, false),
  });
  main.replaceChildren(
    pageHeading("Images"),
    uploads,
    h("section", { "aria-labelledby": "recent-heading" },
      h("h2", { id: "recent-heading", text: "Recent images" }), status, list, more),
  );
  refresh();
  return () => { state.stopped = true; clearTimeout(state.timer); };
}
