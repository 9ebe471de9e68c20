// The upload panel: drag and drop or pick files (or a folder); one progress bar per file.
import { uploadFile } from "./api.js";
import { h, imagePath } from "./dom.js";

const PARALLEL_UPLOADS = 3;

// Files of a dropped folder, walked with the (widely supported) entry API.
async function filesOfEntry(entry) {
  if (entry.isFile) return [await new Promise((resolve, reject) => entry.file(resolve, reject))];
  if (!entry.isDirectory) return [];
  const reader = entry.createReader();
  const found = [];
  for (;;) {
    const batch = await new Promise((resolve, reject) => reader.readEntries(resolve, reject));
    if (!batch.length) return found;
    for (const child of batch) found.push(...(await filesOfEntry(child)));
  }
}

async function droppedFiles(dataTransfer) {
  const entries = [...dataTransfer.items].map((item) => item.webkitGetAsEntry && item.webkitGetAsEntry());
  if (entries.length && entries.every(Boolean)) {
    return (await Promise.all(entries.map(filesOfEntry))).flat();
  }
  return [...dataTransfer.files];
}

function isImage(file) {
  return file.type.startsWith("image/");
}

function uploadRow(file, bulk) {
  const progress = h("progress", { max: "1", value: "0", "aria-label": `Upload of ${file.name}` });
  const state = h("span", { class: "upload-state", text: "waiting" });
  const row = h("li", { class: "upload", "data-name": file.name },
    h("span", { class: "upload-name", text: file.name }),
    bulk ? h("span", { class: "tag", text: "bulk" }) : null, progress, state);
  return { row, progress, state };
}

async function sendOne(file, bulk, view) {
  view.state.textContent = "uploading";
  try {
    const sha256 = await uploadFile(file, { bulk, onProgress: (part) => { view.progress.value = part; } });
    view.progress.value = 1;
    view.state.replaceChildren(h("a", { href: imagePath(sha256), "data-link": true, text: "uploaded — open" }));
    view.row.dataset.sha256 = sha256;
    return true;
  } catch (error) {
    view.row.classList.add("failed");
    view.state.textContent = error.message;
    return false;
  }
}

export function uploadPanel({ onUploaded, onError }) {
  const list = h("ul", { class: "uploads", "aria-label": "Uploads" });
  const summary = h("p", { class: "muted", role: "status" });

  async function send(files) {
    const images = files.filter(isImage);
    const skipped = files.length - images.length;
    if (!images.length) {
      summary.textContent = skipped ? `Nothing to upload: ${skipped} file(s) are not images.` : "";
      return;
    }
    const bulk = images.length > 1;
    const group = h("li", { class: bulk ? "batch bulk" : "batch" },
      bulk ? h("p", { class: "batch-title", text: `Bulk upload · ${images.length} images` }) : null);
    const rows = h("ul", {});
    group.append(rows);
    list.prepend(group);
    const views = images.map((file) => uploadRow(file, bulk));
    views.forEach((view) => rows.append(view.row));
    summary.textContent = `Uploading ${images.length} image(s)` + (skipped ? `; ${skipped} non-image file(s) skipped.` : ".");
    let nextIndex = 0;
    let failed = 0;
    async function lane() {
      while (nextIndex < images.length) {
        const index = nextIndex++;
        if (!(await sendOne(images[index], bulk, views[index]))) failed += 1;
        onUploaded();
      }
    }
    await Promise.all(Array.from({ length: Math.min(PARALLEL_UPLOADS, images.length) }, lane));
    summary.textContent = `Uploaded ${images.length - failed} of ${images.length} image(s).`;
    if (failed) onError(`${failed} upload(s) failed; the reason is next to each file.`);
  }

  const picker = h("input", { id: "file-input", type: "file", accept: "image/*", multiple: true, class: "visually-hidden" });
  const folder = h("input", { id: "folder-input", type: "file", webkitdirectory: true, class: "visually-hidden" });
  for (const input of [picker, folder]) {
    input.addEventListener("change", () => { send([...input.files]); input.value = ""; });
  }
  const zone = h("div", { class: "dropzone" },
    h("p", { text: "Drop photos or a folder here, or" }),
    h("p", { class: "row" },
      // Each input comes first, so that its keyboard focus can outline the label after it.
      picker, h("label", { class: "button", for: "file-input", text: "Choose images…" }),
      folder, h("label", { class: "button secondary", for: "folder-input", text: "Choose a folder…" })),
    h("p", { class: "muted small", text: "JPEG, PNG, GIF, WebP, BMP or TIFF. Several at once are sent as a bulk upload." }));
  zone.addEventListener("dragover", (event) => { event.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", async (event) => {
    event.preventDefault();
    zone.classList.remove("over");
    send(await droppedFiles(event.dataTransfer));
  });
  return h("section", { "aria-labelledby": "upload-heading" },
    h("h2", { id: "upload-heading", text: "Upload" }), zone, summary, list);
}
