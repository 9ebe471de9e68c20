// One image: the photo with its plates and faces boxed, and everything known about it.
import { ApiError, getJson, imageUrl } from "./api.js";
import { thumbnail } from "./cards.js";
import { h, imagePath, pageHeading, percent, plural, statusBadge, svg, when } from "./dom.js";

const POLL_MS = 1500;

function box(kind, label, { x, y, w, h: height }) {
  return svg("g", { class: `box ${kind}`, "data-kind": kind },
    svg("title", { text: label }),
    // A dark halo under the coloured edge: the box shows on light and dark photos alike.
    svg("rect", { class: "halo", x, y, width: w, height, "vector-effect": "non-scaling-stroke" }),
    svg("rect", { class: "edge", x, y, width: w, height, "vector-effect": "non-scaling-stroke" }),
    svg("text", { x, y: Math.max(0, y - 6), class: "box-label", text: label }));
}

// The original with an SVG on top in the image's own pixel coordinates (the boxes' space).
function photo(document) {
  const plates = document.plates.filter((p) => p.box);
  const overlay = svg("svg", { class: "overlay", "aria-hidden": "true", preserveAspectRatio: "none" },
    plates.map((p) => box("plate", p.plate, p.box)),
    document.faces.map((f, i) => box("face", `Face ${i + 1}`, f.box)));
  const img = h("img", { alt: describeBoxes(document), class: "photo" });
  img.addEventListener("load", () => {
    overlay.setAttribute("viewBox", `0 0 ${img.naturalWidth} ${img.naturalHeight}`);
    overlay.style.setProperty("--scale", String(img.naturalWidth / Math.max(1, img.clientWidth)));
  });
  imageUrl(`/api/images/${document.digests.sha256}`).then((url) => { img.src = url; },
    (error) => img.replaceWith(h("p", { class: "error-text", text: error.message })));
  return h("figure", { class: "photo-box" }, h("div", { class: "stack" }, img, overlay),
    h("figcaption", { class: "muted small" },
      h("span", { class: "key-plate", text: "■" }), " plate  ", h("span", { class: "key-face", text: "■" }), " face"));
}

function describeBoxes(document) {
  const parts = [];
  if (document.plates.length) parts.push(`plates ${document.plates.map((p) => p.plate).join(", ")} boxed`);
  if (document.faces.length) parts.push(`${plural(document.faces.length, "face")} boxed`);
  return `The photo${parts.length ? `, ${parts.join("; ")}` : ""}`;
}

function facts(document) {
  const rows = [
    ["Status", statusBadge(document.status)],
    document.error ? ["Error", h("span", { class: "error-text", text: document.error })] : null,
    ["Names", document.names.length ? h("ul", { class: "names" }, document.names.map((n) => h("li", { text: n }))) : "—"],
    ["Camera", camera(document.exif)],
    ["Taken", document.exif.taken_at || "—"],
    ["Location", geotag(document.geotag)],
    ["Format", document.format ? `${document.format}, ${document.width} × ${document.height}` : "—"],
    ["Size", `${(document.size / 1024).toFixed(1)} KiB`],
    ["Received", when(document.received_at)],
    ["Analysed", when(document.analyzed_at) || "—"],
    ["SHA-256", h("code", { text: document.digests.sha256 })],
    ["MD5", h("code", { text: document.digests.md5 })],
  ].filter(Boolean);
  return h("dl", { class: "facts" }, rows.map(([term, value]) => [h("dt", { text: term }), h("dd", {}, value)]));
}

function camera({ make, model }) {
  if (make && model && model.toLowerCase().startsWith(make.toLowerCase())) return model; // "Canon Canon EOS…"
  return [make, model].filter(Boolean).join(" ") || "—";
}

function geotag(tag) {
  if (!tag) return "—";
  const lat = tag.latitude.toFixed(6);
  const lon = tag.longitude.toFixed(6);
  const map = `https://www.openstreetmap.org/?mlat=${lat}&mlon=${lon}#map=16/${lat}/${lon}`;
  return h("span", {}, `${lat}, ${lon} `, h("a", { href: map, rel: "noopener noreferrer", target: "_blank", text: "open on a map (new tab)" }));
}

function platesSection(document) {
  const body = document.plates.length
    ? h("table", {},
      h("thead", {}, h("tr", {}, h("th", { scope: "col", text: "Plate" }), h("th", { scope: "col", text: "Confidence" }),
        h("th", { scope: "col", text: "Other readings" }))),
      h("tbody", {}, document.plates.map((p) => h("tr", {},
        h("td", {}, h("span", { class: "plate", "data-plate": p.plate, text: p.plate })),
        h("td", { text: percent(p.confidence) }),
        h("td", { text: (p.candidates || []).filter((c) => c.plate !== p.plate)
          .map((c) => `${c.plate} (${percent(c.confidence)})`).join(", ") || "—" })))))
    : h("p", { class: "muted", text: document.status === "done" ? "No plate found." : "Not analysed yet." });
  return h("section", { "aria-labelledby": "plates-heading" }, h("h2", { id: "plates-heading", text: "Plates" }), body);
}

function facesSection(document) {
  const body = document.faces.length
    ? h("ol", { class: "faces" }, document.faces.map((face, i) => h("li", {},
      h("h3", { text: `Face ${i + 1}` }),
      face.matches && face.matches.length
        ? h("ul", { class: "cards small-cards", "aria-label": `Other images with face ${i + 1}` },
          face.matches.map((m) => h("li", { class: "card", "data-sha256": m.sha256 },
            h("a", { href: imagePath(m.sha256), "data-link": true, class: "card-link match" },
              h("div", { class: "thumb-box" }, thumbnail(m.sha256, "", 128)),
              h("span", { class: "card-title", text: (m.names && m.names[0]) || `${m.sha256.slice(0, 12)}…` })),
            h("p", { class: "muted small", text: `distance ${m.distance.toFixed(2)}` }))))
        : h("p", { class: "muted", text: "No other image with this face yet." }))))
    : h("p", { class: "muted", text: document.status === "done" ? "No face found." : "Not analysed yet." });
  return h("section", { "aria-labelledby": "faces-heading" }, h("h2", { id: "faces-heading", text: "Faces" }), body);
}

export function render(main, { params, notify }) {
  const state = { stopped: false, timer: null };
  async function load() {
    let document;
    try {
      document = await getJson(`/images/${encodeURIComponent(params.digest)}`);
    } catch (error) {
      if (state.stopped) return;
      if (error instanceof ApiError && error.status === 404) {
        main.replaceChildren(pageHeading("No such image"),
          h("p", { text: `No image has the digest ${params.digest} (MD5, SHA-224 or SHA-256).` }));
      } else {
        notify(error.message, error.needsKey);
      }
      return;
    }
    if (state.stopped) return;
    main.replaceChildren(
      pageHeading(document.names[0] || "Image"),
      h("div", { class: "image-layout" }, photo(document), facts(document)),
      platesSection(document), facesSection(document));
    if (document.status === "queued" || document.status === "processing") {
      state.timer = setTimeout(load, POLL_MS);
    }
  }
  main.replaceChildren(pageHeading("Image"), h("p", { text: "Loading…" }));
  load();
  return () => { state.stopped = true; clearTimeout(state.timer); };
}
