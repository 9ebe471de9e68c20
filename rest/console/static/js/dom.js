// A tiny element builder: text always goes in as text, never as HTML.

const SVG_NS = "http://www.w3.org/2000/svg";

function fill(element, attrs, children) {
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else if (name === "text") element.textContent = value;
    else element.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

export function h(tag, attrs, ...children) {
  return fill(document.createElement(tag), attrs, children);
}

export function svg(tag, attrs, ...children) {
  return fill(document.createElementNS(SVG_NS, tag), attrs, children);
}

export function percent(confidence) {
  return confidence === null || confidence === undefined ? "" : `${Math.round(confidence * 100)}%`;
}

export function when(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : date.toLocaleString();
}

export function plural(count, one, many = `${one}s`) {
  return `${count} ${count === 1 ? one : many}`;
}

export function imagePath(digest) {
  return `/ui/images/${encodeURIComponent(digest)}`;
}

// A status badge: the word is shown, the colour only repeats it.
export function statusBadge(status) {
  return h("span", { class: `badge status-${status || "unknown"}`, text: status || "unknown" });
}

export function pageHeading(text) {
  return h("h1", { tabindex: "-1", text });
}
