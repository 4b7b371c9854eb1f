// The public JSON API (/api/v1), with every failure turned into an ApiProblem in plain words.
// A 401 asks for an API key (auth.js) and sends the call again with it.

import * as auth from "./auth.js";

const BASE = "/api/v1";

export class ApiProblem extends Error {
  constructor(status, code, message, detail = {}) {
    super(message);
    this.status = status;
    this.code = code;
    this.detail = detail;
  }
}

const UNREACHABLE = "The server cannot be reached. Check that it is running and try again.";

/** Turn a non-2xx response body into an ApiProblem. */
function problem(status, statusText, text) {
  try {
    const error = JSON.parse(text).error;
    if (error && error.message) return new ApiProblem(status, error.code || "error", error.message, error);
  } catch (_) {
    // not JSON: a proxy or a crashed server answered
  }
  const reason = statusText ? ` (${statusText})` : "";
  return new ApiProblem(status, "http_error", `The server answered with an error: ${status}${reason}. Try again.`);
}

async function request(method, path) {
  let response;
  try {
    const headers = { Accept: "application/json", ...auth.headers() };
    response = await fetch(BASE + path, { method, headers, cache: "no-store" });
  } catch (_) {
    throw new ApiProblem(0, "unreachable", UNREACHABLE);
  }
  const text = await response.text().catch(() => "");
  if (response.status === 401) {
    await auth.signIn();
    return request(method, path);
  }
  if (!response.ok) throw problem(response.status, response.statusText, text);
  if (response.status === 204 || !text) return null;
  try {
    return JSON.parse(text);
  } catch (_) {
    throw new ApiProblem(response.status, "bad_response", "The server sent a reply the page cannot read.");
  }
}

/** GET /ops: the op catalogue, max_steps and formats. */
export const ops = () => request("GET", "/ops");

/** GET /jobs/<id>. */
export const job = (id) => request("GET", `/jobs/${encodeURIComponent(id)}`);

/** DELETE /jobs/<id>: the canceled job, or null once an ended job is deleted. */
export const remove = (id) => request("DELETE", `/jobs/${encodeURIComponent(id)}`);

/** The URL of a job's result image: its signed share link when the server has keys (an <img> sends no header). */
export const resultUrl = (job) => (job.links && job.links.share) || `${BASE}/jobs/${encodeURIComponent(job.id)}/result`;

/** POST /jobs (see send), asking for a key and sending again when the server answers 401. */
export async function submit(file, steps, options, onProgress) {
  for (;;) {
    try {
      return await send(file, steps, options, onProgress);
    } catch (problem) {
      if (problem.status !== 401) throw problem;
      await auth.signIn();
    }
  }
}

/**
 * POST /jobs with a file, steps and output options; resolves to the job JSON.
 * XMLHttpRequest rather than fetch, for upload progress: onProgress(fraction).
 */
function send(file, steps, options, onProgress) {
  const form = new FormData();
  form.append("file", file, file.name);
  form.append("ops", JSON.stringify(steps));
  if (options.format) form.append("format", options.format);
  if (options.quality !== null && options.quality !== undefined) form.append("quality", String(options.quality));
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", `${BASE}/jobs`);
    xhr.setRequestHeader("Accept", "application/json");
    for (const [name, value] of Object.entries(auth.headers())) xhr.setRequestHeader(name, value);
    xhr.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable && onProgress) onProgress(event.loaded / event.total);
    });
    xhr.addEventListener("load", () => {
      if (xhr.status >= 200 && xhr.status < 300) {
        try {
          resolve(JSON.parse(xhr.responseText));
        } catch (_) {
          reject(new ApiProblem(xhr.status, "bad_response", "The server sent a reply the page cannot read."));
        }
      } else {
        reject(problem(xhr.status, xhr.statusText, xhr.responseText));
      }
    });
    xhr.addEventListener("error", () => {
      reject(new ApiProblem(0, "unreachable",
        "The upload did not get through: the server cannot be reached, or it closed the connection " +
        "(which happens when a file is over its size limit)."));
    });
    xhr.addEventListener("abort", () => reject(new ApiProblem(0, "aborted", "The upload was stopped.")));
    xhr.send(form);
  });
}
