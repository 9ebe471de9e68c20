// An image as a card (thumbnail, names, status, plates, faces), for lists and search results.
import { imageUrl } from "./api.js";
import { h, imagePath, percent, plural, statusBadge, when } from "./dom.js";

export function thumbnail(sha256, alt, size = 256) {
  const img = h("img", { class: "thumb", alt, decoding: "async" });
  imageUrl(`/images/${sha256}/thumbnail?size=${size}`)
    .then((url) => { img.src = url; })
    .catch(() => img.classList.add("missing"));
  return img;
}

// The /images/<digest> document in the shape of a listing row.
export function summaryOf(document) {
  return {
    sha256: document.digests.sha256,
    md5: document.digests.md5,
    names: document.names,
    status: document.status,
    received_at: document.received_at,
    plates: document.plates.map((p) => ({ plate: p.plate, confidence: p.confidence })),
    faces: document.faces.length,
    error: document.error,
  };
}

function plateList(plates) {
  if (!plates.length) return h("p", { class: "muted", text: "No plate" });
  return h("ul", { class: "plates", "aria-label": "Plates" },
    plates.map((p) => h("li", {},
      h("span", { class: "plate", "data-plate": p.plate, text: p.plate }), " ",
      h("span", { class: "muted", text: percent(p.confidence) }))));
}

function title(summary) {
  return summary.names[0] || `${summary.sha256.slice(0, 12)}…`;
}

export function imageCard(summary) {
  const done = summary.status === "done";
  const others = summary.names.length > 1 ? ` (+${summary.names.length - 1} more)` : "";
  return h("li", { class: "card", "data-sha256": summary.sha256, "data-status": summary.status },
    h("a", { href: imagePath(summary.sha256), "data-link": true, class: "card-link" },
      h("div", { class: "thumb-box" }, thumbnail(summary.sha256, "")),
      h("span", { class: "card-title", text: title(summary) + others })),
    h("div", { class: "card-body" },
      h("p", {}, statusBadge(summary.status), " ",
        done ? h("span", { text: plural(summary.faces, "face") }) : null),
      done ? plateList(summary.plates) : null,
      summary.error ? h("p", { class: "error-text", text: summary.error }) : null,
      h("p", { class: "muted small" }, h("time", { datetime: summary.received_at, text: when(summary.received_at) }))));
}
