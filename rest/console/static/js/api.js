// Every call to the service goes through here, so the API key (if the user gave one) rides
// on every request, whatever mode the server's access control is in.

const KEY_STORAGE = "imagescan.apiKey";
const keyListeners = new Set();

export function apiKey() {
  return sessionStorage.getItem(KEY_STORAGE) || "";
}

export function setApiKey(key) {
  if (key) sessionStorage.setItem(KEY_STORAGE, key);
  else sessionStorage.removeItem(KEY_STORAGE);
  keyListeners.forEach((listener) => listener(apiKey()));
}

export function onKeyChange(listener) {
  keyListeners.add(listener);
}

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }

  get needsKey() {
    return this.status === 401 || this.status === 403;
  }
}

// A sentence a person can act on, for a failed call; `detail` is the service's own reason.
export function explain(status, detail) {
  const reason = detail ? ` (${detail})` : "";
  if (status === 401 || status === 403) {
    if (!apiKey()) return `This needs an API key: enter one under “API key” at the top${reason}.`;
    if (status === 401) return `The API key was not accepted: check it under “API key” at the top${reason}.`;
    return `Your API key is not allowed to do this: use a key with the needed scope${reason}.`;
  }
  if (status === 0) return "The service cannot be reached; check the connection and retry.";
  if (status === 429) return `Too many attempts; wait a minute and retry${reason}.`;
  if (status >= 500) return `The service could not answer (${status})${reason}; retry shortly.`;
  return detail || `The request failed (${status}).`;
}

function withKey(headers) {
  const all = new Headers(headers || {});
  const key = apiKey();
  if (key) all.set("x-api-key", key);
  return all;
}

async function errorOf(response) {
  let detail = "";
  try {
    detail = (await response.json()).error || "";
  } catch {
    detail = "";
  }
  return new ApiError(response.status, explain(response.status, detail));
}

export async function request(path, options = {}) {
  let response;
  try {
    response = await fetch(path, { ...options, headers: withKey(options.headers) });
  } catch {
    throw new ApiError(0, explain(0));
  }
  if (!response.ok) throw await errorOf(response);
  return response;
}

export async function getJson(path) {
  return (await request(path, { headers: { Accept: "application/json" } })).json();
}

// An image fetched with the key, as a blob: URL for <img src> (an <img> cannot send headers).
// Kept (and reused by path) until the page is left, so redrawing a list fetches nothing again.
const objectUrls = new Map();

export function imageUrl(path) {
  if (!objectUrls.has(path)) {
    const loading = request(path).then((response) => response.blob()).then((blob) => URL.createObjectURL(blob));
    loading.catch(() => objectUrls.delete(path)); // a failure is retried next time
    objectUrls.set(path, loading);
  }
  return objectUrls.get(path);
}

export function releaseImages() {
  objectUrls.forEach((loading) => loading.then((url) => URL.revokeObjectURL(url), () => {}));
  objectUrls.clear();
}

// One file to POST /upload_file with upload progress; resolves to the image's SHA-256.
export function uploadFile(file, { bulk, onProgress }) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", "/upload_file");
    xhr.setRequestHeader("Accept", "application/json");
    withKey().forEach((value, name) => xhr.setRequestHeader(name, value));
    // Marks uploads of many files at once, so the service can tell them from single uploads.
    if (bulk) xhr.setRequestHeader("X-Upload-Mode", "bulk");
    xhr.upload.onprogress = (event) => {
      if (event.lengthComputable) onProgress(event.loaded / event.total);
    };
    xhr.onerror = () => reject(new ApiError(0, explain(0)));
    xhr.onload = () => {
      let body = {};
      try {
        body = JSON.parse(xhr.responseText);
      } catch {
        body = {};
      }
      if (xhr.status === 200 && body.image_id) resolve(body.image_id);
      else reject(new ApiError(xhr.status, explain(xhr.status, body.error)));
    };
    const form = new FormData();
    form.append("image", file, file.name);
    xhr.send(form);
  });
}
