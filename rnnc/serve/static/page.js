// The page of `rnnc serve`: learns the models from GET /v1/models, POSTs what the user
// typed, pasted or uploaded to the model's /v1 predict URL, and draws the answer as
// inline SVG (bars for class probabilities, lines for a sequence or a forecast).
// Everything the server sends is shown through textContent, never parsed as HTML.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const COLOURS = ["#2f6fd6", "#d6702f", "#2fa36b", "#a33fb8", "#b8a13f", "#3fa6b8"];
const MAX_POINTS = 500; // a longer output is drawn as its line alone
const $ = (id) => document.getElementById(id);
let models = [];
let current = null;

// A server started with --token wants it on every request; the page keeps it for this tab only.
function headers(extra) {
  const token = sessionStorage.getItem("rnnc-token");
  return token ? { ...extra, Authorization: "Bearer " + token } : extra;
}

function element(name, attributes, text) {
  const node = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes || {})) node.setAttribute(key, String(value));
  if (text !== undefined) node.textContent = text;
  return node;
}

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = false;
}

function clearOutput() {
  $("error").hidden = true;
  $("result").hidden = true;
  $("chart").replaceChildren();
  $("headline").textContent = "";
}

// The inputs a user gives: lengths inputs are optional, the server fills them.
function given(model) {
  return model.inputs.filter((input) => !input.optional);
}

function example(model) {
  if (model.input === "text") return "";
  if (model.input === "ids") return "1, 2, 3";
  if (model.input === "json") {
    const one = {};
    for (const input of given(model)) one[input.name] = [];
    return JSON.stringify(one);
  }
  const steps = model.timesteps || 5;
  const features = model.features || 1;
  const rows = [];
  for (let t = 0; t < steps; t++) {
    const row = [];
    for (let f = 0; f < features; f++) row.push((Math.sin(0.7 * t + f) * 0.5).toFixed(2));
    rows.push(row.join(", "));
  }
  return rows.join("\n");
}

function hint(model) {
  const shape = (model.features ? model.features + " features" : "features") + " per step";
  const steps = model.timesteps ? `exactly ${model.timesteps} steps` : "any number of steps";
  switch (model.input) {
    case "text": return "Type a text; the model reads it raw, tokenised as it was trained.";
    case "ids": return "Token ids, comma-separated, one sequence.";
    case "json": return "One instance as JSON: an object naming each input (" + given(model).map((i) => i.name).join(", ") + ").";
    default: return `One sequence: one step per line, ${shape} comma-separated (${steps}). Paste it or upload a CSV.`;
  }
}

function choose(model) {
  current = model;
  const takes = given(model).map((i) => `${i.name} ${i.datatype || ""} [${(i.shape || []).join(", ")}]`.replace(/\s+\[/, " [")).join("; ");
  $("title").replaceChildren(document.createTextNode("rnnc serve: "), Object.assign(document.createElement("code"), { textContent: model.name }));
  document.title = `${model.name} · rnnc serve`;
  $("about").textContent = `takes ${takes || model.input}` + (model.classes ? `; classes ${model.classes.join(", ")}` : "");
  $("hint").textContent = hint(model);
  $("input").value = example(model);
  $("input").rows = model.input === "sequence" || model.input === "json" ? 8 : 3;
  $("input").placeholder = model.input === "text" ? "Type a text…" : example(model);
  $("upload").hidden = model.input !== "sequence";
  $("metadata").href = "/v2/models/" + encodeURIComponent(model.name);
  $("predict").disabled = false;
  clearOutput();
}

// One sequence from CSV text: one step per line, features separated by commas; a first
// line with no number at all is a header and is skipped. Token ids: all of them, in order.
function parseSteps(text, integers) {
  const lines = text.split(/\r?\n/).map((line) => line.trim()).filter((line) => line !== "");
  if (integers) {  // token ids: one sequence, however it is broken into lines
    const ids = lines.join(",").split(/[\s,]+/).filter((c) => c !== "").map((cell, i) => number(cell, `id ${i + 1}`, true));
    if (!ids.length) throw new Error("the input is empty: give token ids, comma-separated");
    return ids;
  }
  const rows = lines.map((line) => line.split(",").map((cell) => cell.trim()));
  if (rows.length && rows[0].every((cell) => cell === "" || Number.isNaN(Number(cell)))) rows.shift();
  if (!rows.length) throw new Error("the input is empty: give one step per line");
  return rows.map((row, line) => row.map((cell, column) => number(cell, `line ${line + 1}, column ${column + 1}`, false)));
}

function number(cell, where, integers) {
  const value = Number(cell);
  if (cell === "" || !Number.isFinite(value) || (integers && !Number.isInteger(value))) {
    throw new Error(`${where}: '${cell}' is not ${integers ? "an integer" : "a number"}`);
  }
  return value;
}

function payload(model) {
  const text = $("input").value;
  if (model.input === "text") return { texts: [text] };
  if (model.input === "json") {
    try { return { instances: [JSON.parse(text)] }; } catch (e) { throw new Error("the input is not JSON: " + e.message); }
  }
  return { instances: [parseSteps(text, model.input === "ids")] };
}

async function predict(event) {
  event.preventDefault();
  clearOutput();
  let body;
  try { body = payload(current); } catch (e) { showError(e.message); return; }
  $("predict").disabled = true;
  try {
    const response = await fetch(current.predict, {
      method: "POST", headers: headers({ "Content-Type": "application/json" }), body: JSON.stringify(body),
    });
    const answer = await response.json().catch(() => null);
    if (response.status === 401) $("login").hidden = false;
    if (!response.ok) { showError((answer && answer.error) || `the server answered ${response.status}`); return; }
    if (!answer || !Array.isArray(answer.predictions) || !answer.predictions.length) { showError("the server's answer has no predictions"); return; }
    show(answer.predictions[0]);
  } catch (e) {
    showError("no answer from the server: " + e.message);
  } finally {
    $("predict").disabled = false;
  }
}

// A v1 prediction is one part ({label, probability, probabilities}, {probabilities} for
// multi-label, {y}, or {steps: [...]} per step); a graph's names one part per output.
const PART_KEYS = ["probabilities", "y", "steps"];

function show(prediction) {
  $("result").hidden = false;
  const single = PART_KEYS.some((key) => key in prediction);
  const parts = single ? [["", prediction]] : Object.entries(prediction);
  const said = parts.map(([name, part]) => showPart(name, part, parts.length > 1)).filter((s) => s);
  $("headline").textContent = said.join("; ");
}

function showPart(name, part, named) {
  const title = named ? `${name}: ` : "";
  const add = (chart) => $("chart").append(...(named ? [caption(name)] : []), chart);
  if (part && typeof part === "object" && part.probabilities) {
    add(bars(part.probabilities));
    return "label" in part ? `${title}${part.label} (${Number(part.probability).toFixed(4)})` : title.replace(/: $/, "");
  }
  if (part && Array.isArray(part.steps) && part.steps.every((s) => s && s.probabilities)) {  // a class per step
    const classes = Object.keys(part.steps[0] ? part.steps[0].probabilities : {});
    if (part.steps.length) add(lines(name, classes.map((c) => part.steps.map((s) => s.probabilities[c])), classes));
    return `${title}${part.steps.map((s) => s.label).filter((l) => l !== undefined).join(" ") || part.steps.length + " steps"}`;
  }
  const value = part && typeof part === "object" && "y" in part ? part.y : part;
  const flat = [].concat(value).flat(Infinity);
  if (!flat.every((v) => typeof v === "number")) return `${title || name + " = "}${JSON.stringify(value)}`;
  const label = named ? name : "y";
  if (flat.length <= 1) return flat.length ? `${label} = ${flat[0].toPrecision(6)}` : `${label}: no values`;
  const [low, high] = [Math.min, Math.max].map((pick) => flat.reduce((a, b) => pick(a, b)).toPrecision(4));
  add(lines(name, seriesOf(value)));
  return `${label}: ${flat.length} values, ${low} to ${high}`;
}

// One series per output unit over the steps, or one over a forecast vector's values.
function seriesOf(value) {
  const rows = Array.isArray(value) ? value.map((v) => [].concat(v).flat(Infinity)) : [[value]];
  return rows.length && rows[0].length > 1 ? rows[0].map((_, u) => rows.map((r) => r[u])) : [rows.map((r) => r[0])];
}

function caption(name) {
  return Object.assign(document.createElement("h3"), { textContent: name });
}

// Horizontal bars, likeliest first; data-label and data-value carry the exact numbers.
function bars(probabilities) {
  const entries = Object.entries(probabilities).sort((a, b) => b[1] - a[1]);
  const width = 640, row = 30, left = 150, right = 70, top = 6;
  const svg = element("svg", { class: "bars", width: "100%", viewBox: `0 0 ${width} ${top * 2 + row * entries.length}`, role: "img" });
  entries.forEach(([label, p], i) => {
    const y = top + i * row;
    const g = element("g", { class: "entry", "data-label": label, "data-value": p });
    g.append(element("text", { x: left - 10, y: y + row / 2 + 4, "text-anchor": "end", class: "label" }, label));
    g.append(element("rect", { x: left, y: y + 5, height: row - 10, width: Math.max(1, (width - left - right) * p), class: i === 0 ? "bar top" : "bar" }));
    g.append(element("text", { x: left + (width - left - right) * p + 6, y: y + row / 2 + 4, class: "value" }, Number(p).toFixed(4)));
    svg.append(g);
  });
  return svg;
}

// One line per series (an output unit, or a class's probability per step), named when `names` are given.
function lines(name, series, names) {
  const all = series.flat();
  let low = all.reduce((a, b) => Math.min(a, b)), high = all.reduce((a, b) => Math.max(a, b));
  if (high === low) { high += 0.5; low -= 0.5; }
  const width = 640, height = 240, left = 56, right = 16, top = 12, bottom = 28;
  const steps = series[0].length;
  const x = (t) => left + (steps === 1 ? 0 : (t * (width - left - right)) / (steps - 1));
  const y = (v) => top + ((high - v) * (height - top - bottom)) / (high - low);
  const svg = element("svg", { class: "lines", "data-output": name, width: "100%", viewBox: `0 0 ${width} ${height}`, role: "img" });
  svg.append(element("line", { x1: left, y1: top, x2: left, y2: height - bottom, class: "axis" }));
  svg.append(element("line", { x1: left, y1: height - bottom, x2: width - right, y2: height - bottom, class: "axis" }));
  svg.append(element("text", { x: left - 6, y: top + 4, "text-anchor": "end", class: "value" }, high.toPrecision(3)));
  svg.append(element("text", { x: left - 6, y: height - bottom, "text-anchor": "end", class: "value" }, low.toPrecision(3)));
  svg.append(element("text", { x: left, y: height - 8, class: "value" }, "step 1"));
  svg.append(element("text", { x: width - right, y: height - 8, "text-anchor": "end", class: "value" }, `step ${steps}`));
  series.forEach((values, unit) => {
    const colour = COLOURS[unit % COLOURS.length];
    const g = element("g", { class: "unit", "data-unit": names ? names[unit] : unit });
    if (names) g.append(element("text", { x: width - right - 4, y: top + 14 + 16 * unit, "text-anchor": "end", fill: colour, class: "legend" }, names[unit]));
    g.append(element("polyline", { class: "series", stroke: colour, points: values.map((v, t) => `${x(t)},${y(v)}`).join(" ") }));
    if (steps <= MAX_POINTS) values.forEach((v, t) => g.append(element("circle", { class: "point", cx: x(t), cy: y(v), r: 3, fill: colour, "data-step": t, "data-value": v })));
    svg.append(g);
  });
  return svg;
}

function readFile() {
  const file = $("file").files[0];
  if (!file) return;
  file.text().then((text) => { $("input").value = text; }, (e) => showError("could not read the file: " + e.message));
}

async function load() {
  clearOutput();
  try {
    const response = await fetch("/v1/models", { headers: headers({}) });
    const answer = await response.json().catch(() => null);
    $("login").hidden = response.status !== 401;
    if (!response.ok) throw new Error((answer && answer.error) || `the server answered ${response.status}`);
    models = answer.models;
  } catch (e) {
    $("about").textContent = "";
    showError("could not read the models from /v1/models: " + e.message);
    return;
  }
  const wanted = new URLSearchParams(location.search).get("model");
  $("model").replaceChildren(...models.map((model) => new Option(model.name, model.name)));
  $("choice").hidden = models.length < 2;
  const index = Math.max(0, models.findIndex((m) => m.name === wanted));
  $("model").selectedIndex = index;
  choose(models[index]);
  document.body.dataset.ready = "true";
}

function start() {
  $("form").addEventListener("submit", predict);
  $("file").addEventListener("change", readFile);
  $("model").addEventListener("change", () => choose(models[$("model").selectedIndex]));
  $("login").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem("rnnc-token", $("token").value.trim());
    load();
  });
  load();
}

document.addEventListener("DOMContentLoaded", start);
