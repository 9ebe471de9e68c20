// Search: images by plate (exact or up to two edits away), or an image by digest.
import { getJson } from "./api.js";
import { imageCard, summaryOf } from "./cards.js";
import { h, imagePath, pageHeading } from "./dom.js";

const DIGEST = /^([0-9a-f]{32}|[0-9a-f]{56}|[0-9a-f]{64})$/i;

function plateForm(query) {
  const fuzzy = query.get("fuzzy") || "0";
  const options = [["0", "Exact"], ["1", "Close (1 edit)"], ["2", "Fuzzy (up to 2 edits)"]];
  return h("form", { class: "search-form", "aria-labelledby": "plate-search-heading", action: "/ui/search" },
    h("h2", { id: "plate-search-heading", text: "By plate" }),
    h("label", { for: "plate-input", text: "Plate (spaces and dashes are ignored)" }),
    h("input", { id: "plate-input", name: "plate", required: true, value: query.get("plate") || "",
      autocomplete: "off", spellcheck: "false", autocapitalize: "characters" }),
    h("label", { for: "fuzzy-input", text: "Match" }),
    h("select", { id: "fuzzy-input", name: "fuzzy" },
      options.map(([value, text]) => h("option", { value, selected: value === fuzzy, text }))),
    h("p", { class: "muted small", text: "An edit is a lookalike (O/0, I/1, B/8, S/5, Z/2, G/6) or a missing or extra character." }),
    h("button", { type: "submit", text: "Search plates" }));
}

function digestForm(query) {
  return h("form", { class: "search-form", "aria-labelledby": "digest-search-heading", action: "/ui/search" },
    h("h2", { id: "digest-search-heading", text: "By digest" }),
    h("label", { for: "digest-input", text: "MD5, SHA-224 or SHA-256 (hex)" }),
    h("input", { id: "digest-input", name: "digest", required: true, value: query.get("digest") || "",
      autocomplete: "off", spellcheck: "false", pattern: "[0-9a-fA-F]{32}|[0-9a-fA-F]{56}|[0-9a-fA-F]{64}" }),
    h("button", { type: "submit", text: "Open image" }));
}

async function plateResults(plate, fuzzy) {
  const query = fuzzy === "0" ? "" : `?fuzzy=${fuzzy}`;
  const md5s = await getJson(`/license/${encodeURIComponent(plate)}${query}`);
  const documents = await Promise.all(md5s.map((md5) => getJson(`/images/${md5}`)));
  return documents.map(summaryOf);
}

export function render(main, { query, navigate, notify }) {
  const results = h("section", { "aria-labelledby": "results-heading", "aria-live": "polite" });
  main.replaceChildren(pageHeading("Search"),
    h("div", { class: "search-forms" }, plateForm(query), digestForm(query)), results);
  main.querySelectorAll("form").forEach((form) => form.addEventListener("submit", (event) => {
    event.preventDefault();
    const data = new URLSearchParams(new FormData(form));
    navigate(`/ui/search?${data}`);
  }));
  const digest = (query.get("digest") || "").trim();
  if (digest) {
    // After this render returns: the router is still inside it.
    if (DIGEST.test(digest)) setTimeout(() => navigate(imagePath(digest.toLowerCase()), { replace: true }));
    else results.replaceChildren(h("p", { class: "error-text", text: "A digest is 32, 56 or 64 hexadecimal characters." }));
    return () => {};
  }
  const plate = (query.get("plate") || "").trim();
  if (!plate) return () => {};
  let stopped = false;
  results.replaceChildren(h("p", { text: "Searching…" }));
  plateResults(plate, query.get("fuzzy") || "0").then((found) => {
    if (stopped) return;
    results.replaceChildren(
      h("h2", { id: "results-heading", text: `${found.length} image(s) for ${plate}` }),
      found.length ? h("ul", { class: "cards", "aria-label": "Results" }, found.map(imageCard))
        : h("p", { text: "None. Try a fuzzier match." }));
  }, (error) => {
    if (!stopped) results.replaceChildren(h("p", { class: "error-text", text: error.message }));
    notify(error.message, error.needsKey);
  });
  return () => { stopped = true; };
}
