// The page: images in, a pipeline from the catalogue, jobs out. Wires the other modules together.

import * as api from "./api.js";
import { announce, bytes, h, replace } from "./dom.js";
import { JobCard, remembered } from "./jobs.js";
import { Pipeline, availablePresets } from "./pipeline.js";

const $ = (id) => document.getElementById(id);

const tray = []; // images picked but not yet submitted: {file, preview}
const cards = new Set();
let pipeline;
let catalog = null;
let busy = false;

// ---------------------------------------------------------------- the catalogue

async function loadCatalog() {
  try {
    catalog = await api.ops();
  } catch (problem) {
    const retry = h("button", { type: "button", class: "small-button" }, "Try again");
    retry.addEventListener("click", () => { $("page-error").hidden = true; loadCatalog(); });
    replace($("page-error"), `The list of operations could not be loaded. ${problem.message} `, retry);
    $("page-error").hidden = false;
    return;
  }
  pipeline.setCatalog(catalog);
  fillOps(catalog.ops);
  fillFormats(catalog.formats || []);
  fillPresets();
  refresh();
}

function fillOps(ops) {
  const families = new Map();
  for (const op of ops) {
    if (!families.has(op.family)) families.set(op.family, []);
    families.get(op.family).push(op);
  }
  const select = $("op-select");
  replace(select, [...families].map(([family, members]) => h("optgroup", { label: family },
    members.map((op) => h("option", { value: op.name, text: op.analysis ? `${op.name} (analysis)` : op.name })))));
  select.disabled = ops.length === 0;
  describeOp();
}

function describeOp() {
  const op = catalog && catalog.ops.find((o) => o.name === $("op-select").value);
  $("op-description").textContent = op ? `${op.name}: ${op.description}` : "";
}

function fillFormats(formats) {
  const select = $("format-select");
  for (const format of formats) select.append(h("option", { value: format, text: format.toUpperCase() }));
}

function fillPresets() {
  const box = $("presets");
  const presets = availablePresets(pipeline.ops, catalog.presets);
  box.querySelectorAll("button").forEach((b) => b.remove());
  for (const preset of presets) {
    const button = h("button", { type: "button", class: "preset", title: preset.description }, preset.title);
    button.addEventListener("click", () => {
      pipeline.load(preset.ops);
      $("submit-error").textContent = "";
      announce(`Preset ${preset.title}: ${preset.ops.length} step(s) loaded.`);
    });
    box.append(button);
  }
  box.hidden = presets.length === 0;
}

function addStep() {
  pipeline.add($("op-select").value);
  pipeline.render();
  const steps = $("steps").querySelectorAll(".step");
  const added = steps[steps.length - 1];
  const input = added && added.querySelector("input, select");
  (input || added?.querySelector("button") || $("add-step")).focus();
  announce(`Step ${steps.length}: ${$("op-select").value} added.`);
}

// ---------------------------------------------------------------- images in

function addFiles(files) {
  for (const file of files) tray.push({ file, preview: URL.createObjectURL(file) });
  renderTray();
  if (files.length) announce(`${files.length} image(s) added; ${tray.length} ready to process.`);
}

function renderTray() {
  replace($("tray"), tray.map((item, index) => {
    const { file } = item;
    const note = h("span", { class: "tray-note small" });
    const thumb = h("img", { class: "thumb", src: item.preview, alt: "", width: 64, height: 64 });
    thumb.addEventListener("error", () => {
      thumb.replaceWith(h("span", { class: "thumb none", "aria-hidden": "true" }, "?"));
      note.textContent = "No preview: this may not be an image (the server will check).";
    });
    const remove = h("button", { type: "button", class: "icon", "aria-label": `Remove ${file.name}`, title: "Remove" }, "✕");
    remove.addEventListener("click", () => {
      const [gone] = tray.splice(index, 1);
      URL.revokeObjectURL(gone.preview);
      renderTray();
      ($("tray").querySelectorAll("button")[Math.min(index, tray.length - 1)] || $("file-input")).focus();
    });
    return h("li", { class: "tray-item" }, thumb,
      h("div", { class: "tray-text" }, h("span", { class: "tray-name" }, file.name),
        h("span", { class: "muted small" }, bytes(file.size), file.type ? ` · ${file.type}` : ""), note),
      remove);
  }));
  refresh();
}

function setupDrop() {
  const zone = $("drop");
  const input = $("file-input");
  input.addEventListener("change", () => {
    addFiles([...input.files]);
    input.value = "";
  });
  let depth = 0;
  const hasFiles = (event) => event.dataTransfer && [...event.dataTransfer.types].includes("Files");
  window.addEventListener("dragenter", (event) => {
    if (!hasFiles(event)) return;
    depth += 1;
    zone.classList.add("dragging");
  });
  window.addEventListener("dragleave", () => {
    depth = Math.max(0, depth - 1);
    if (depth === 0) zone.classList.remove("dragging");
  });
  window.addEventListener("dragover", (event) => {
    if (hasFiles(event)) event.preventDefault(); // accept files dropped anywhere on the page
  });
  window.addEventListener("drop", (event) => {
    if (!hasFiles(event)) return;
    event.preventDefault();
    depth = 0;
    zone.classList.remove("dragging");
    addFiles([...event.dataTransfer.files]);
  });
}

// ---------------------------------------------------------------- output options

function refreshQuality() {
  const input = $("quality-input");
  input.disabled = $("format-select").value === "png";
  checkQuality();
}

/** Check the quality box: {value} (null when empty or not used) or {error}. */
function checkQuality() {
  const input = $("quality-input");
  const error = $("quality-error");
  const raw = input.value.trim();
  let result = { value: null };
  if (!input.disabled && (raw !== "" || input.validity.badInput)) {
    const number = Number(raw);
    if (input.validity.badInput || !Number.isInteger(number) || number < 1 || number > 100) {
      result = { error: "Quality must be a whole number from 1 to 100." };
    } else {
      result = { value: number };
    }
  }
  error.textContent = result.error || "";
  if (result.error) input.setAttribute("aria-invalid", "true");
  else input.removeAttribute("aria-invalid");
  return result;
}

// ---------------------------------------------------------------- jobs out

function newCard(options) {
  const card = new JobCard({
    ...options,
    onReuse: (file, preview) => {
      tray.push({ file, preview });
      renderTray();
      announce(`${file.name} is back in the images to process.`);
    },
    onRemove: (gone) => {
      cards.delete(gone);
      refresh();
    },
  });
  cards.add(card);
  return card;
}

/** Point at the pipeline or output option the server refused. */
function showRefusal(problem) {
  if (problem.code === "invalid_output") {
    $("quality-error").textContent = problem.message;
    $("quality-input").focus();
    return;
  }
  let step = problem.detail.step;
  let param = problem.detail.param;
  if (step === undefined) {
    const match = /^step (\d+)(?: \([^)]*\): (\w+) )?/.exec(problem.message);
    step = match ? Number(match[1]) : null;
    param = match ? match[2] : null;
  }
  if (step) pipeline.showServerError(step, param, problem.message);
}

async function submitAll() {
  const message = $("submit-error");
  message.textContent = "";
  if (!catalog || busy || tray.length === 0) return;
  const checked = pipeline.validate();
  const quality = checkQuality();
  if (checked.error || quality.error) {
    message.textContent = checked.error || quality.error;
    (checked.focus || $("quality-input")).focus();
    return;
  }
  const options = { format: $("format-select").value || null, quality: quality.value };
  const batch = tray.splice(0).map((item) => ({ ...item, card: newCard(item) }));
  $("job-list").prepend(...batch.map((item) => item.card.node));
  renderTray();
  busy = true;
  refresh();
  announce(`Uploading ${batch.length} image(s).`);
  for (const [index, item] of batch.entries()) {
    try {
      await item.card.upload(checked.steps, options);
    } catch (problem) {
      const pipelineProblem = problem.code === "invalid_ops" || problem.code === "invalid_output";
      if (!pipelineProblem && problem.code !== "unreachable") continue; // this file's own problem: go on
      const unsent = batch.slice(pipelineProblem ? index : index + 1);
      for (const rest of unsent) rest.card.detach();
      tray.unshift(...unsent.map(({ file, preview }) => ({ file, preview })));
      renderTray();
      if (pipelineProblem) showRefusal(problem);
      message.textContent = `${problem.message} Nothing more was sent; the images are still in the list above.`;
      break;
    }
  }
  busy = false;
  refresh();
}

function restoreJobs() {
  for (const { id, name } of remembered()) {
    const card = newCard({ id, name });
    $("job-list").append(card.node);
    card.poll();
  }
  refresh();
}

function clearEnded() {
  for (const card of [...cards]) {
    if (["finished", "failed", "canceled", "gone", "rejected"].includes(card.status)) card.detach();
  }
  announce("Ended jobs removed from the list (their results stay on the server until they expire).");
}

function refresh() {
  const count = tray.length;
  const submit = $("submit");
  submit.textContent = busy ? "Uploading…" : `Process ${count || ""} image${count === 1 ? "" : "s"}`.replace("  ", " ");
  submit.disabled = busy || !catalog || count === 0;
  $("add-step").disabled = !catalog || pipeline.full || catalog.ops.length === 0;
  $("no-jobs").hidden = cards.size > 0;
  $("clear-ended").hidden = cards.size === 0;
}

function init() {
  pipeline = new Pipeline($("steps"), $("no-steps"), refresh);
  setupDrop();
  $("add-step").addEventListener("click", addStep);
  $("op-select").addEventListener("change", describeOp);
  $("submit").addEventListener("click", submitAll);
  $("format-select").addEventListener("change", refreshQuality);
  $("quality-input").addEventListener("input", checkQuality);
  $("clear-ended").addEventListener("click", clearEnded);
  refresh();
  loadCatalog();
  restoreJobs();
}

init();
