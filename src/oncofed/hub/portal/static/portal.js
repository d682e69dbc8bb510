// oncofed portal: progressive enhancement only. Every page works without this file.
"use strict";
document.documentElement.classList.add("js");

// Catalogue facets: apply a filter as soon as it is ticked, and give the keyboard focus
// back to the same box on the reloaded page (a keyboard user keeps their place).
document.addEventListener("change", (e) => {
  const t = e.target;
  if (t instanceof HTMLInputElement && t.hasAttribute("data-autosubmit") && t.form) {
    sessionStorage.setItem("oncofed-focus", `${t.name}=${t.value}`);
    t.form.requestSubmit();
  }
});
const refocus = sessionStorage.getItem("oncofed-focus");
if (refocus) {
  sessionStorage.removeItem("oncofed-focus");
  const [name, value] = refocus.split(/=(.*)/s);
  for (const box of document.querySelectorAll("input[data-autosubmit]")) {
    if (box.name === name && box.value === value) box.focus();
  }
}

// A share link is selected whole when focused, ready to copy.
for (const box of document.querySelectorAll("[data-select-on-focus]")) {
  box.addEventListener("focus", () => box.select());
}

// Cohort explorer: show the value fields of the chosen criterion without a round trip.
const TYPE_WORDS = { EQUALS: "is", NOT_EQUALS: "is not", IN: "is any of", BETWEEN: "between",
  LOWER_THAN: "below", GREATER_THAN: "above", CONTAINS: "contains" };

function el(tag, attrs = {}, children = []) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  for (const c of children) node.append(c);
  return node;
}

function field(id, labelText, control) {
  control.id = id;
  return el("div", {}, [el("label", { for: id }, [labelText]), control]);
}

function valueFields(spec) {
  const box = document.getElementById("c-value");
  box.replaceChildren();
  if (!spec) return;
  const type = el("select", { name: "type" });
  for (const t of [...spec.types].sort()) type.append(el("option", { value: t }, [TYPE_WORDS[t] || t]));
  box.append(field("c-type", "Comparison", type));
  const unit = spec.unit ? ` (${spec.unit})` : "";
  if (spec.value_type === "number") {
    box.append(field("c-min", `From / value${unit}`, el("input", { name: "min", inputmode: "decimal" })));
    box.append(field("c-max", `To${unit}`, el("input", { name: "max", inputmode: "decimal" })));
  } else if (spec.values) {
    // Ticks, not a Ctrl-click list: long names wrap, and a filter box narrows them.
    const filter = el("input", { type: "search", class: "filter", "aria-label": "Filter the values",
      placeholder: "Type to filter", "data-filter-values": "" });
    const checks = el("div", { class: "checks" });
    for (const v of spec.values) {
      checks.append(el("label", { class: "check" },
        [el("input", { type: "checkbox", name: "value", value: v.code }), ` ${v.label}`]));
    }
    box.append(el("fieldset", { class: "values", id: "c-values" },
      [el("legend", {}, ["Values (tick one or more)"]), filter, checks]));
  } else {
    const hint = spec.examples ? ` (e.g. ${spec.examples.join(", ")})` : "";
    box.append(field("c-text", `Value${hint}`, el("input", { name: "value" })));
  }
}

// Type-ahead over a criterion's values: hide the ticks whose label does not contain the text.
document.addEventListener("input", (event) => {
  const box = event.target;
  if (!(box instanceof HTMLInputElement) || !box.hasAttribute("data-filter-values")) return;
  const wanted = box.value.trim().toLowerCase();
  for (const label of box.closest("fieldset").querySelectorAll("label.check")) {
    label.hidden = wanted !== "" && !label.textContent.toLowerCase().includes(wanted);
  }
});

const keySelect = document.querySelector("[data-vocab-select]");
if (keySelect) {
  const vocab = JSON.parse(document.getElementById("vocabulary").textContent);
  const byKey = Object.fromEntries(vocab.keys.map((k) => [k.key, k]));
  keySelect.addEventListener("change", () => valueFields(byKey[keySelect.value]));
}

// Cohort results: follow the search's server-sent events and redraw the results panel
// (rendered by the server, charts included) as each provider's answer arrives.
const results = document.querySelector("#results[data-run]");
if (results && results.dataset.complete !== "true" && "EventSource" in window) {
  const source = new EventSource(`/cohort/runs/${encodeURIComponent(results.dataset.run)}/events`);
  let pending = Promise.resolve();
  const refresh = () => {
    pending = pending.then(async () => {
      const response = await fetch(location.href, { headers: { accept: "text/html" } });
      if (!response.ok) return;
      const doc = new DOMParser().parseFromString(await response.text(), "text/html");
      const fresh = doc.getElementById("results");
      const current = document.getElementById("results");
      if (fresh && current) current.replaceWith(fresh);
    });
  };
  source.addEventListener("node", refresh);
  source.addEventListener("done", () => { source.close(); refresh(); });
  source.addEventListener("error", () => { source.close(); refresh(); });
}
