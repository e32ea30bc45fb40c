#!/usr/bin/env node
// The repository speaks for itself (tests/repo, label "repo"). Usage:
//   node check.js api-doc SOURCE_DIR   docs/api.md and api/openapi.json name the same endpoints,
//                                      the same error codes with the same statuses, the same job
//                                      error codes
//   node check.js links SOURCE_DIR     every link in README.md, CONTRIBUTING.md and docs/ resolves
//                                      to a file (and heading) inside the repository
//   node check.js paths SOURCE_DIR     no tracked file names a path of a particular checkout or
//                                      build machine, and no document refers to files outside
//                                      the repository
// Prints every problem found, then exits 1 if there was any.
"use strict";
const fs = require("fs");
const path = require("path");
const { execFileSync } = require("child_process");

const [command, root] = process.argv.slice(2);
if (!command || !root) {
  console.error("usage: check.js api-doc|links|paths SOURCE_DIR");
  process.exit(2);
}
const problems = [];
const problem = (msg) => problems.push(msg);
const read = (rel) => fs.readFileSync(path.join(root, rel), "utf8");

// The lines of a markdown section: from the heading `title` to the next heading of its level or
// higher.
function section(markdown, title) {
  const lines = markdown.split("\n");
  const start = lines.findIndex((l) => l.trim() === title);
  if (start < 0) throw new Error(`docs/api.md has no heading '${title}'`);
  const level = title.match(/^#+/)[0].length;
  const out = [];
  for (const line of lines.slice(start + 1)) {
    const h = line.match(/^(#+) /);
    if (h && h[1].length <= level) break;
    out.push(line);
  }
  return out;
}

// The first table among the lines (from its header row to the first line that is not a row).
function firstTable(lines) {
  const start = lines.findIndex((l) => l.startsWith("|"));
  const out = [];
  for (const l of start < 0 ? [] : lines.slice(start)) {
    if (!l.startsWith("|")) break;
    out.push(l);
  }
  return out;
}

// Table rows as arrays of cells (header and separator rows dropped).
function rows(lines) {
  return lines
    .filter((l) => l.startsWith("|"))
    .map((l) => l.split("|").slice(1, -1).map((c) => c.trim()))
    .filter((cells) => !cells.every((c) => /^-+$/.test(c)))
    .slice(1);
}

function compareSets(what, inDoc, inOpenapi) {
  for (const x of inOpenapi) if (!inDoc.has(x)) problem(`${what} ${x} is in api/openapi.json but not in docs/api.md`);
  for (const x of inDoc) if (!inOpenapi.has(x)) problem(`${what} ${x} is in docs/api.md but not in api/openapi.json`);
}

function apiDoc() {
  const doc = read("docs/api.md");
  const openapi = JSON.parse(read("api/openapi.json"));

  // Endpoints: every operation of the document is a row of the endpoints table, and back.
  const methods = ["get", "put", "post", "delete", "patch", "options", "head", "trace"];
  const opsOpenapi = new Set();
  for (const [p, item] of Object.entries(openapi.paths))
    for (const m of Object.keys(item)) if (methods.includes(m)) opsOpenapi.add(`${m.toUpperCase()} ${p}`);
  const opsDoc = new Set();
  for (const cells of rows(firstTable(section(doc, "## Endpoints")))) {
    const m = cells[0].match(/^`([A-Z]+) (\/[^`?]*)`$/);
    if (!m) problem(`docs/api.md: endpoints row '${cells[0]}' is not \`METHOD /path\``);
    else opsDoc.add(`${m[1]} ${m[2]}`);
  }
  compareSets("endpoint", opsDoc, opsOpenapi);

  // Error codes and their statuses: the Error schema's enum, each code's status from its
  // description ("- `code` (status): ...").
  const errorSchema = openapi.components.schemas.Error;
  const enumCodes = errorSchema.properties.error.properties.code.enum;
  const statusOf = new Map();
  for (const m of errorSchema.description.matchAll(/^- `([a-z_]+)` \((\d{3})\):/gm)) statusOf.set(m[1], m[2]);
  const errorsOpenapi = new Set();
  for (const code of enumCodes) {
    if (!statusOf.has(code)) problem(`api/openapi.json: error code ${code} has no "- \`${code}\` (status):" line in the Error schema's description`);
    errorsOpenapi.add(`${statusOf.get(code) || "???"} ${code}`);
  }
  for (const code of statusOf.keys())
    if (!enumCodes.includes(code)) problem(`api/openapi.json: error code ${code} is described but not in the enum`);
  const errorsDoc = new Set();
  for (const cells of rows(firstTable(section(doc, "## Errors"))).filter((c) => /^\d{3}$/.test(c[0]))) {
    const m = cells[1].match(/^`([a-z_]+)`$/);
    if (!m) problem(`docs/api.md: error row '${cells.join(" | ")}' has no \`code\``);
    else errorsDoc.add(`${cells[0]} ${m[1]}`);
  }
  compareSets("error", errorsDoc, errorsOpenapi);

  // Job error codes: ErrorInfo's enum.
  const jobOpenapi = new Set(openapi.components.schemas.ErrorInfo.properties.code.enum);
  const jobDoc = new Set();
  const errorLines = section(doc, "## Errors");
  const tableStart = errorLines.findIndex((l) => /^\| job error code \|/.test(l));
  if (tableStart < 0) problem("docs/api.md: the Errors section has no '| job error code |' table");
  else {
    for (const cells of rows(firstTable(errorLines.slice(tableStart)))) {
      const m = cells[0].match(/^`([a-z_]+)`$/);
      if (m) jobDoc.add(m[1]);
    }
  }
  compareSets("job error code", jobDoc, jobOpenapi);
}

// GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens.
function anchors(markdown) {
  const out = new Set();
  let fenced = false;
  for (const line of markdown.split("\n")) {
    if (/^\s*```/.test(line)) fenced = !fenced;
    const h = !fenced && line.match(/^#+ (.*)$/);
    if (h) {
      const slug = h[1].trim().toLowerCase().replace(/[^\p{L}\p{N} _-]/gu, "").replace(/ /g, "-");
      let s = slug;
      for (let i = 1; out.has(s); i++) s = `${slug}-${i}`;
      out.add(s);
    }
  }
  return out;
}

function markdownFiles() {
  const files = ["README.md", "CONTRIBUTING.md"];
  const walk = (dir) => {
    for (const e of fs.readdirSync(path.join(root, dir), { withFileTypes: true })) {
      const rel = path.join(dir, e.name);
      if (e.isDirectory()) walk(rel);
      else if (e.name.endsWith(".md")) files.push(rel);
    }
  };
  walk("docs");
  return files;
}

function links() {
  const rootReal = fs.realpathSync(root);
  for (const file of markdownFiles()) {
    if (!fs.existsSync(path.join(root, file))) {
      problem(`${file} is missing`);
      continue;
    }
    // Links in prose: code blocks and code spans are not links.
    const text = read(file)
      .replace(/^\s*```[\s\S]*?^\s*```/gm, "")
      .replace(/`[^`\n]*`/g, "");
    const targets = [];
    for (const m of text.matchAll(/!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)) targets.push(m[1]);
    for (const m of text.matchAll(/^\s*\[[^\]]+\]:\s*(\S+)/gm)) targets.push(m[1]);
    for (const m of text.matchAll(/<a\s[^>]*href="([^"]+)"|<img\s[^>]*src="([^"]+)"/g)) targets.push(m[1] || m[2]);
    for (const target of targets) {
      if (/^[a-z][a-z0-9+.-]*:/i.test(target)) {
        problem(`${file}: link '${target}' leaves the repository`);
        continue;
      }
      if (target.startsWith("/")) {
        problem(`${file}: link '${target}' is an absolute path`);
        continue;
      }
      const [rel, anchor] = target.split("#");
      const resolved = rel ? path.resolve(root, path.dirname(file), decodeURIComponent(rel)) : path.resolve(root, file);
      if (!resolved.startsWith(path.resolve(root) + path.sep)) {
        problem(`${file}: link '${target}' points outside the repository`);
        continue;
      }
      if (!fs.existsSync(resolved)) {
        problem(`${file}: link '${target}' does not resolve (${path.relative(root, resolved)} is missing)`);
        continue;
      }
      if (!fs.realpathSync(resolved).startsWith(rootReal + path.sep)) {
        problem(`${file}: link '${target}' resolves outside the repository`);
        continue;
      }
      if (anchor && resolved.endsWith(".md") && !anchors(fs.readFileSync(resolved, "utf8")).has(anchor))
        problem(`${file}: link '${target}': no heading with the anchor #${anchor}`);
    }
  }
}

function trackedFiles() {
  try {
    return execFileSync("git", ["-C", root, "ls-files", "-z"], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] })
      .split("\0")
      .filter(Boolean);
  } catch {
    // Not a git checkout (a source tarball): every file but build output and installed modules.
    const out = [];
    const walk = (dir) => {
      for (const e of fs.readdirSync(path.join(root, dir), { withFileTypes: true })) {
        const rel = dir ? path.join(dir, e.name) : e.name;
        if (e.isDirectory()) {
          if (![".git", "node_modules", "var"].includes(e.name) && !/^build/.test(e.name)) walk(rel);
        } else out.push(rel);
      }
    };
    walk("");
    return out;
  }
}

function paths() {
  // Home and checkout folders of build machines. Built from parts so this file does not match.
  const machine = ["work", "home", "root", "Users"].map((d) => "/" + d + "/");
  // Documents must not send readers to files outside the repository either.
  const outside = ["shared/" + "design/"];
  const documents = (f) => f.endsWith(".md") || f === "api/openapi.json";
  for (const file of trackedFiles()) {
    const full = path.join(root, file);
    let text;
    try {
      if (!fs.statSync(full).isFile()) continue;
      const buf = fs.readFileSync(full);
      if (buf.includes(0)) continue;  // binary (screenshots)
      text = buf.toString("utf8");
    } catch {
      continue;  // deleted in the work tree
    }
    const lines = text.split("\n");
    lines.forEach((line, i) => {
      for (const p of machine) if (line.includes(p)) problem(`${file}:${i + 1}: names '${p}': ${line.trim().slice(0, 160)}`);
      if (documents(file))
        for (const p of outside) if (line.includes(p)) problem(`${file}:${i + 1}: refers outside the repository ('${p}')`);
    });
  }
}

try {
  ({ "api-doc": apiDoc, links, paths })[command]();
} catch (e) {
  problem(e.message);
}
for (const p of problems) console.log(p);
if (problems.length) {
  console.log(`${problems.length} problem(s)`);
  process.exit(1);
}
console.log(`${command}: ok`);
