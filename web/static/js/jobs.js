// Job cards: upload, live progress, cancel, before/after, download, and the list kept across reloads.

import * as api from "./api.js";
import { renderAnalysis } from "./analysis.js";
import { announce, bytes, h, replace } from "./dom.js";

const ENDED = new Set(["finished", "failed", "canceled"]);
const STORE_KEY = "imgjobs.recent";
const KEEP = 50;
const POLL_STARTED_MS = 300;
const POLL_QUEUED_MS = 600;
const POLL_HIDDEN_MS = 3000; // while the tab is in the background
const POLL_MAX_MS = 5000;

const LABELS = {
  ready: "Waiting to upload",
  loading: "Checking…",
  uploading: "Uploading",
  queued: "Queued: waiting for a worker",
  started: "Processing",
  finished: "Done",
  failed: "Failed",
  canceled: "Canceled",
  rejected: "Not accepted",
  gone: "Expired",
};

const sleep = (ms) => new Promise((resolve) => { window.setTimeout(resolve, ms); });

// ---------------------------------------------------------------- the list kept in localStorage

/** The jobs this browser submitted, newest first: [{id, name}]. */
export function remembered() {
  try {
    const list = JSON.parse(window.localStorage.getItem(STORE_KEY) || "[]");
    return Array.isArray(list) ? list.filter((item) => item && typeof item.id === "string") : [];
  } catch (_) {
    return [];
  }
}

function save(list) {
  try {
    window.localStorage.setItem(STORE_KEY, JSON.stringify(list.slice(0, KEEP)));
  } catch (_) {
    // storage full or disabled: the list just does not survive a reload
  }
}

const remember = (id, name) => save([{ id, name }, ...remembered().filter((item) => item.id !== id)]);
const forget = (id) => save(remembered().filter((item) => item.id !== id));

// ---------------------------------------------------------------- words

function stepSummary(steps) {
  if (!steps || steps.length === 0) return "re-encode only";
  return steps.map((step) => step.op).join(" → ");
}

function dimensions(info) {
  if (!info || !info.width) return "";
  return `${info.width}×${info.height}`;
}

function describeImage(info) {
  return [dimensions(info), info && info.bytes !== undefined ? bytes(info.bytes) : "",
    info && info.format ? String(info.format).toUpperCase() : ""].filter(Boolean).join(" · ");
}

// ---------------------------------------------------------------- one card

export class JobCard {
  /** A card for a file from this session (`file`, `preview`) or a job from the list (`id`). */
  constructor({ file = null, preview = null, id = null, name = "", onReuse = null, onRemove = null }) {
    this.file = file;
    this.preview = preview;
    this.id = id;
    this.name = file ? file.name : name;
    this.onReuse = onReuse;
    this.onRemove = onRemove;
    this.status = id ? "loading" : "ready";
    this.restored = Boolean(id);
    this.job = null;
    this.resultShown = false;
    this.build();
  }

  build() {
    this.thumb = h("img", { class: "thumb", alt: "", width: 64, height: 64 });
    if (this.preview) this.thumb.src = this.preview;
    else this.thumb.hidden = true;
    this.thumb.addEventListener("error", () => {
      const none = h("span", { class: "thumb none", "aria-hidden": "true" }, "?");
      this.thumb.replaceWith(none);
      this.thumb = none;
    }, { once: true });
    this.title = h("h3", { class: "job-name" }, this.name || "(unnamed)");
    this.meta = h("p", { class: "job-meta muted small" }, this.file ? `${bytes(this.file.size)}` : "");
    this.pipeline = h("p", { class: "job-steps small" });
    this.statusText = h("span", { class: "status-text" }, LABELS[this.status]);
    this.progress = h("progress", { max: 1, value: 0, "aria-label": `Progress of ${this.name}` });
    this.percent = h("span", { class: "percent small", "aria-hidden": "true" });
    this.error = h("p", { class: "job-error", role: "alert" });
    this.error.hidden = true;
    this.cancelButton = this.button("Cancel", `Cancel the job for ${this.name}`, () => this.cancel());
    this.deleteButton = this.button("Delete", `Delete the job for ${this.name} and its result`, () => this.delete());
    this.reuseButton = this.button("Use again", `Put ${this.name} back into the images to process`,
      () => this.onReuse && this.onReuse(this.file, this.preview));
    this.result = h("div", { class: "job-result" });
    this.node = h("li", { class: "job", "data-status": this.status },
      h("div", { class: "job-head" }, this.thumb,
        h("div", { class: "job-title" }, this.title, this.meta, this.pipeline),
        h("div", { class: "job-actions" }, this.cancelButton, this.reuseButton, this.deleteButton)),
      h("div", { class: "job-progress" }, this.progress, this.statusText, this.percent),
      this.error, this.result);
    this.setStatus(this.status);
  }

  button(text, label, onClick) {
    const button = h("button", { type: "button", class: "small-button", "aria-label": label }, text);
    button.addEventListener("click", onClick);
    return button;
  }

  setStatus(status, fraction = null) {
    this.status = status;
    this.node.dataset.status = status;
    this.statusText.textContent = LABELS[status] || status;
    if (status === "queued" || status === "loading") this.progress.removeAttribute("value"); // indeterminate: waiting
    else if (fraction !== null) this.progress.value = fraction;
    const counting = ["uploading", "started", "finished"].includes(status);
    const shown = counting && this.progress.hasAttribute("value") ? `${Math.round(this.progress.value * 100)}%` : "";
    this.percent.textContent = shown;
    this.updateButtons();
  }

  updateButtons() {
    const known = Boolean(this.id);
    const ended = ENDED.has(this.status) || this.status === "gone" || this.status === "rejected";
    this.cancelButton.hidden = !(known && (this.status === "queued" || this.status === "started"));
    this.deleteButton.hidden = !ended;
    const onServer = known && ENDED.has(this.status);
    this.deleteButton.textContent = onServer ? "Delete" : "Remove";
    this.deleteButton.setAttribute("aria-label", onServer
      ? `Delete the job for ${this.name} and its result from the server` : `Remove ${this.name} from the list`);
    this.reuseButton.hidden = !(this.file && this.onReuse && ended);
  }

  showError(message) {
    this.error.textContent = message;
    this.error.hidden = !message;
  }

  /** Upload the file with these steps; returns the job, or throws the ApiProblem. */
  async upload(steps, options) {
    this.setStatus("uploading", 0);
    this.pipeline.textContent = stepSummary(steps);
    try {
      const job = await api.submit(this.file, steps, options, (fraction) => this.setStatus("uploading", fraction));
      this.id = job.id;
      remember(job.id, this.name);
      this.update(job);
      this.poll();
      return job;
    } catch (problem) {
      this.setStatus("rejected");
      this.showError(problem.message);
      throw problem;
    }
  }

  /** Show a job's JSON. */
  update(job) {
    this.job = job;
    this.id = job.id;
    this.pipeline.textContent = stepSummary(job.ops);
    if (job.input && job.input.width) this.meta.textContent = describeImage(job.input);
    if (!this.name && job.input) {
      this.name = job.input.filename || job.id;
      this.title.textContent = this.name;
    }
    const previous = this.status;
    this.setStatus(job.status, job.progress);
    if (job.error) this.showError(job.error.message);
    if (job.status === "finished" && !this.resultShown) this.showResult(job);
    if (previous !== job.status && ENDED.has(job.status)) announce(`${this.name}: ${LABELS[job.status]}.`);
  }

  /** Follow the job until it ends, faster while it runs, backing off while the server is away. */
  async poll() {
    let delay = 0;
    let failures = 0;
    while (this.id && !ENDED.has(this.status) && !this.removed) {
      await sleep(delay);
      try {
        this.update(await api.job(this.id));
        failures = 0;
        this.showError("");
        delay = this.status === "started" ? POLL_STARTED_MS : POLL_QUEUED_MS;
        if (document.hidden) delay = POLL_HIDDEN_MS;
      } catch (problem) {
        if (problem.status === 404) {
          if (this.restored && !this.job) this.detach(); // expired while the page was closed
          else this.gone();
          return;
        }
        failures += 1;
        this.showError(`${problem.message} (Still trying.)`);
        delay = Math.min(POLL_MAX_MS, 500 * 2 ** failures);
      }
    }
  }

  gone() {
    this.setStatus("gone");
    this.showError("This job is no longer on the server: it expired or was deleted.");
    if (this.id) forget(this.id);
  }

  async cancel() {
    this.cancelButton.disabled = true;
    try {
      const job = await api.remove(this.id);
      if (job) this.update(job);
      else this.detach();
      announce(`${this.name}: canceled.`);
    } catch (problem) {
      if (problem.status === 404) this.gone();
      else this.showError(problem.message);
    } finally {
      this.cancelButton.disabled = false;
    }
  }

  async delete() {
    if (this.id && this.status !== "gone") {
      this.deleteButton.disabled = true;
      try {
        await api.remove(this.id);
      } catch (problem) {
        if (problem.status !== 404) {
          this.showError(problem.message);
          this.deleteButton.disabled = false;
          return;
        }
      }
    }
    this.detach();
    announce(`${this.name} removed.`);
  }

  detach() {
    this.removed = true;
    if (this.id) forget(this.id);
    this.node.remove();
    if (this.onRemove) this.onRemove(this);
  }

  showResult(job) {
    this.resultShown = true;
    const result = job.result || {};
    const url = api.resultUrl(job);
    const after = h("img", { class: "after", src: url, alt: `Result: ${this.name}`,
      width: result.width, height: result.height });
    after.addEventListener("error", () => this.showError("The result image could not be loaded (it may have expired)."));
    if (!this.preview) {
      this.thumb.src = url;
      this.thumb.hidden = false;
    }
    const download = h("a", { class: "button download", href: url, download: "",
      "aria-label": `Download the result for ${this.name}` }, "Download");
    const sizes = h("p", { class: "sizes small" },
      h("span", null, "Original: ", describeImage(job.input) || "?"),
      h("span", { "aria-hidden": "true" }, " → "),
      h("span", { class: "result-size" }, "Result: ", describeImage(result)));
    const analysis = (result.analysis || []).map(renderAnalysis);
    replace(this.result, compare(this.preview, after, this.name, result), sizes, download,
      analysis.length ? h("div", { class: "analyses" }, analysis) : null);
  }
}

/** A before/after view: a slider over the two images, or the two side by side; the result alone without an original. */
function compare(preview, after, name, result) {
  const stage = h("div", { class: "compare-stage" });
  if (result.width && result.height) {
    stage.style.aspectRatio = `${result.width} / ${result.height}`;
    stage.style.maxWidth = `${Math.max(result.width, 240)}px`; // never blow a small result up
  }
  if (!preview) return h("figure", { class: "compare single" }, replace(stage, after));

  const before = h("img", { class: "before", src: preview, alt: `Original: ${name}` });
  const divider = h("div", { class: "divider", "aria-hidden": "true" });
  const tagBefore = h("span", { class: "tag tag-before", "aria-hidden": "true" }, "Before");
  const tagAfter = h("span", { class: "tag tag-after", "aria-hidden": "true" }, "After");
  replace(stage, before, after, divider, tagBefore, tagAfter);
  const slider = h("input", { type: "range", min: 0, max: 100, value: 50, class: "compare-slider",
    "aria-label": `Before and after divider for ${name} (percent of the original shown)` });
  const place = () => {
    const at = Number(slider.value);
    after.style.clipPath = `inset(0 0 0 ${at}%)`;
    divider.style.left = `${at}%`;
  };
  slider.addEventListener("input", place);
  place();
  const figure = h("figure", { class: "compare slider" });
  const toggle = h("button", { type: "button", class: "small-button", "aria-pressed": "false" }, "Side by side");
  toggle.addEventListener("click", () => {
    const side = figure.classList.toggle("side");
    figure.classList.toggle("slider", !side);
    toggle.setAttribute("aria-pressed", String(side));
    slider.hidden = side;
  });
  return replace(figure, stage, h("div", { class: "compare-controls" }, slider, toggle));
}
