// The console's entry point: picks the page for the URL, keeps the API key panel and notices.
import { apiKey, onKeyChange, releaseImages, setApiKey } from "./api.js";
import { h } from "./dom.js";
import * as home from "./home.js";
import * as image from "./image.js";
import * as search from "./search.js";
import * as stats from "./stats.js";

const ROUTES = [
  [/^\/$/, home, "Images"],
  [/^\/ui\/search$/, search, "Search"],
  [/^\/ui\/stats$/, stats, "Statistics"],
  [/^\/ui\/images\/([^/]+)$/, image, "Image", (m) => ({ digest: decodeURIComponent(m[1]) })],
];

const main = document.getElementById("main");
const notice = document.getElementById("notice");
const keyPanel = document.getElementById("key-panel");
const keyInput = document.getElementById("key-input");
let leavePage = () => {};
let pageKeyListener = null;
let refusedForKey = false; // something on this page failed for want of a (valid) key

function openKeyPanel() {
  keyPanel.open = true;
  keyInput.focus();
}

function notify(message, needsKey) {
  refusedForKey ||= Boolean(needsKey);
  notice.replaceChildren(h("span", { text: message }),
    needsKey ? h("button", { type: "button", class: "secondary", onclick: openKeyPanel, text: "Enter API key" }) : null);
  notice.hidden = false;
}

function clearNotice() {
  notice.hidden = true;
  notice.replaceChildren();
}

function showKeyState() {
  document.getElementById("key-state").textContent = apiKey() ? "(set)" : "(none)";
}

function navigate(path, { replace = false } = {}) {
  if (replace) history.replaceState(null, "", path);
  else history.pushState(null, "", path);
  show(true);
}

function show(moveFocus) {
  leavePage();
  releaseImages();
  clearNotice();
  pageKeyListener = null;
  refusedForKey = false;
  const path = location.pathname;
  const found = ROUTES.map(([pattern, ...rest]) => [path.match(pattern), ...rest]).find(([m]) => m);
  document.querySelectorAll("nav a").forEach((a) => {
    if (a.getAttribute("href") === path) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  });
  if (!found) {
    document.title = "Not found · imagescan";
    main.replaceChildren(h("h1", { tabindex: "-1", text: "No such page" }), h("p", {}, h("a", { href: "/", "data-link": true, text: "Go to the home page" })));
    leavePage = () => {};
    return;
  }
  const [match, page, title, paramsOf] = found;
  document.title = `${title} · imagescan`;
  leavePage = page.render(main, {
    params: paramsOf ? paramsOf(match) : {},
    query: new URLSearchParams(location.search),
    navigate,
    notify,
    onKeyChange: (listener) => { pageKeyListener = listener; },
  }) || (() => {});
  if (moveFocus) (main.querySelector("h1") || main).focus();
}

// Links inside the console change the page without reloading it.
document.addEventListener("click", (event) => {
  const link = event.target.closest("a[data-link]");
  if (!link || event.ctrlKey || event.metaKey || event.shiftKey || event.button !== 0) return;
  event.preventDefault();
  navigate(link.getAttribute("href"));
});
window.addEventListener("popstate", () => show(true));

document.getElementById("key-form").addEventListener("submit", (event) => {
  event.preventDefault();
  setApiKey(keyInput.value.trim());
  keyInput.value = "";
  keyPanel.open = false;
});
document.getElementById("key-forget").addEventListener("click", () => {
  setApiKey("");
  keyInput.value = "";
});
onKeyChange(() => {
  showKeyState();
  const retry = refusedForKey;
  clearNotice();
  if (pageKeyListener) pageKeyListener();
  else if (retry) show(false); // draw again what the missing key had refused
});

showKeyState();
show(false);
