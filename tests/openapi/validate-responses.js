#!/usr/bin/env node
// Validates the answers that the OpenAPI end-to-end tests recorded (tests/openapi/recorder.hpp,
// one JSON object a line in <dir>/*.jsonl) against api/openapi.json:
//  - the status must be one the document lists for that operation (or, for a request that
//    matches no operation, in x-unmatched-responses);
//  - the content type must be one of that response's media types;
//  - headers the response marks required must be there and match their schemas;
//  - JSON bodies and event-stream `data` must validate against the schemas (JSON Schema 2020-12,
//    with ajv). Object schemas that list properties are read as closed here (additionalProperties
//    false unless the document says otherwise), so that a field the daemon sends but the document
//    does not describe is caught: the document stays open for clients, as the contract wants.
// Finally every operation must have been answered at least once with a 2xx status.
//
// Usage: node validate-responses.js <openapi.json> <record dir>

"use strict";
const fs = require("node:fs");
const path = require("node:path");
const Ajv2020 = require("ajv/dist/2020").default;
const addFormats = require("ajv-formats").default;

const [docPath, recordDir] = process.argv.slice(2);
if (!docPath || !recordDir) {
  console.error("usage: node validate-responses.js <openapi.json> <record dir>");
  process.exit(2);
}

const doc = JSON.parse(fs.readFileSync(docPath, "utf8"));
const ROOT = "https://snapvirt.invalid/openapi.json";
const METHODS = ["get", "put", "post", "delete", "patch", "options", "trace", "head"];

// Closes object schemas that list properties (see above), in a copy of the document.
function closeObjects(node) {
  if (Array.isArray(node)) return node.map(closeObjects);
  if (node === null || typeof node !== "object") return node;
  const out = {};
  for (const [k, v] of Object.entries(node)) out[k] = closeObjects(v);
  if (out.properties && typeof out.properties === "object" && !Array.isArray(out.properties) &&
      !("additionalProperties" in out) && !("unevaluatedProperties" in out)) {
    out.additionalProperties = false;
  }
  return out;
}

const strictDoc = closeObjects(doc);
// strictRequired would refuse `required` without `properties` beside it, which 2020-12 allows (if/then).
const ajv = new Ajv2020({ strict: true, strictRequired: false, allErrors: true, allowUnionTypes: true });
addFormats(ajv);
for (const keyword of ["paths", "components", "x-unmatched-responses"]) ajv.addKeyword(keyword);
ajv.addSchema({
  $id: ROOT,
  paths: strictDoc.paths,
  components: strictDoc.components,
  "x-unmatched-responses": strictDoc["x-unmatched-responses"],
});

const esc = (s) => s.replace(/~/g, "~0").replace(/\//g, "~1");
const compiled = new Map();
function validatorAt(pointer) {
  if (!compiled.has(pointer)) compiled.set(pointer, ajv.compile({ $ref: ROOT + "#" + pointer }));
  return compiled.get(pointer);
}
function at(pointer) {
  let node = doc;
  for (const part of pointer.split("/").slice(1)) {
    node = node[part.replace(/~1/g, "/").replace(/~0/g, "~")];
    if (node === undefined) return undefined;
  }
  return node;
}
// Follows $refs; returns [object, pointer of the object].
function deref(pointer) {
  let node = at(pointer);
  for (let i = 0; i < 16 && node && typeof node === "object" && typeof node.$ref === "string"; i++) {
    if (!node.$ref.startsWith("#/")) throw new Error(`non-local $ref ${node.$ref}`);
    pointer = node.$ref.slice(1);
    node = at(pointer);
  }
  return [node, pointer];
}
const formatErrors = (errors) =>
  (errors || []).map((e) => `${e.instancePath || "/"} ${e.message}${e.params ? " " + JSON.stringify(e.params) : ""}`).join("; ");

const files = fs.existsSync(recordDir) ? fs.readdirSync(recordDir).filter((f) => f.endsWith(".jsonl")).sort() : [];
if (files.length === 0) {
  console.error(`no recordings (*.jsonl) in ${recordDir}: run the recording tests first`);
  process.exit(1);
}

let passed = 0;
let failed = 0;
const exercised = new Map(); // "METHOD path" -> Set of statuses
const codesSeen = new Set();

for (const file of files) {
  const lines = fs.readFileSync(path.join(recordDir, file), "utf8").split("\n").filter((l) => l.trim() !== "");
  lines.forEach((line, index) => {
    const where = `${file}:${index + 1}`;
    const problems = [];
    let rec;
    try {
      rec = JSON.parse(line);
    } catch (e) {
      console.log(`FAIL ${where}: not JSON: ${e.message}`);
      failed++;
      return;
    }
    const label = `${rec.method} ${rec.target} -> ${rec.status}`;
    const method = rec.method.toLowerCase();
    let responsesPtr;
    if (rec.route && doc.paths[rec.route] && doc.paths[rec.route][method]) {
      responsesPtr = `/paths/${esc(rec.route)}/${method}/responses`;
      const key = `${rec.method} ${rec.route}`;
      if (!exercised.has(key)) exercised.set(key, new Set());
      exercised.get(key).add(rec.status);
    } else {
      responsesPtr = "/x-unmatched-responses/responses";
      if (rec.route && !doc.paths[rec.route]) problems.push(`the router's route ${rec.route} is not in the document`);
    }
    const responses = at(responsesPtr);
    const statusKey = String(rec.status);
    if (!responses || !(statusKey in responses)) {
      problems.push(`status ${rec.status} is not documented at ${responsesPtr}`);
    } else {
      const [response, responsePtr] = deref(`${responsesPtr}/${statusKey}`);
      const media = (rec.content_type || "").split(";")[0].trim().toLowerCase();
      const content = response.content || {};
      if (!(media in content)) {
        if (Object.keys(content).length > 0 || rec.body !== "")
          problems.push(`content type '${rec.content_type}' is not one of [${Object.keys(content).join(", ")}]`);
      }
      for (const [name, h] of Object.entries(response.headers || {})) {
        const [header, headerPtr] = deref(`${responsePtr}/headers/${esc(name)}`);
        const value = rec.headers[name.toLowerCase()];
        if (value === undefined) {
          if (header.required) problems.push(`required header ${name} is missing`);
          continue;
        }
        if (header.schema) {
          const v = validatorAt(`${headerPtr}/schema`);
          if (!v(value)) problems.push(`header ${name}: '${value}': ${formatErrors(v.errors)}`);
        }
      }
      if (media === "application/json" && media in content) {
        let body;
        try {
          body = JSON.parse(rec.body);
        } catch (e) {
          problems.push(`body is not JSON: ${e.message}`);
        }
        if (body !== undefined) {
          const v = validatorAt(`${responsePtr}/content/${esc(media)}/schema`);
          if (!v(body)) problems.push(`body: ${formatErrors(v.errors)}`);
          if (body && body.error && typeof body.error.code === "string") codesSeen.add(body.error.code);
        }
      }
      if (Array.isArray(rec.events)) {
        const events = (content[media] || {})["x-events"] || {};
        for (const e of rec.events) {
          if (!(e.type in events)) {
            problems.push(`event type '${e.type}' is not in x-events`);
            continue;
          }
          if (!/^[0-9]+$/.test(e.id)) problems.push(`event id '${e.id}' is not a number`);
          let data;
          try {
            data = JSON.parse(e.data);
          } catch (err) {
            problems.push(`event ${e.id} data is not JSON: ${err.message}`);
            continue;
          }
          const v = validatorAt(`${responsePtr}/content/${esc(media)}/x-events/${esc(e.type)}`);
          if (!v(data)) problems.push(`event ${e.id} (${e.type}): ${formatErrors(v.errors)}`);
        }
      }
    }
    if (problems.length) {
      failed++;
      console.log(`FAIL ${where} ${label}\n  - ${problems.join("\n  - ")}`);
      if (rec.body && rec.body.length < 2000) console.log(`  body: ${rec.body}`);
    } else {
      passed++;
    }
  });
}

// Every operation answered at least once, and at least once successfully.
const untested = [];
for (const [p, item] of Object.entries(doc.paths)) {
  for (const m of METHODS) {
    if (!item[m]) continue;
    const key = `${m.toUpperCase()} ${p}`;
    const statuses = exercised.get(key);
    if (!statuses || ![...statuses].some((s) => s >= 200 && s < 300)) {
      untested.push(key);
      continue;
    }
    const documented = Object.keys(item[m].responses);
    const missing = documented.filter((s) => !statuses.has(Number(s)));
    console.log(`ok   ${key}: answered ${[...statuses].sort().join(" ")}${missing.length ? `; not exercised: ${missing.join(" ")}` : ""}`);
  }
}
for (const key of untested) {
  console.log(`FAIL ${key}: never answered with a 2xx status in the recordings`);
  failed++;
}
const allCodes = doc.components.schemas.Error.properties.error.properties.code.enum;
const unseen = allCodes.filter((c) => !codesSeen.has(c));
console.log(`error codes seen: ${[...codesSeen].sort().join(" ")}`);
console.log(`error codes not exercised: ${unseen.join(" ") || "none"}`);
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 && passed > 0 ? 0 : 1);
