// The "Backups" view: plain JS over the app's JSON routes (relative URLs, so the page works
// under any base path). Every text goes in through textContent: nothing from a store or a
// connection is ever parsed as HTML.
"use strict";

const main = document.getElementById("main");
const notice = document.getElementById("notice");
let databases = null;

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

async function api(path, options) {
  const response = await fetch(path, {
    credentials: "same-origin",
    headers: { Accept: "application/json", "Content-Type": "application/json" },
    ...options,
  });
  let body = null;
  try { body = await response.json(); } catch (e) { body = null; }
  if (!response.ok) {
    let detail = body && body.detail !== undefined ? body.detail : response.statusText;
    if (typeof detail !== "string") detail = JSON.stringify(detail);
    const error = new Error(`${response.status}: ${detail}`);
    error.status = response.status;
    throw error;
  }
  return body;
}

function query(params) {
  return new URLSearchParams(params).toString();
}

function bytes(n) {
  if (n === null || n === undefined) return "–";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

function when(iso) {
  if (!iso) return "–";
  const d = new Date(iso);
  return isNaN(d) ? iso : d.toISOString().replace("T", " ").slice(0, 19) + " UTC";
}

function badge(state, text) {
  return el("span", { class: `badge ${state || ""}`, text: text || state || "–" });
}

function runLink(run, text) {
  if (!run) return el("span", { class: "muted", text: "–" });
  return el("a", { href: `../${run.link}`, target: "_top", text: text || run.run_id });
}

function verification(v) {
  if (!v) return el("span", { class: "muted", text: "never" });
  if (v.state === "running") return badge("running", "verifying…");
  return el("span", {}, badge(v.ok ? "ok" : "failed", v.ok ? "verified" : "failed"), " ",
    el("span", { class: "muted", text: when(v.at) }));
}

function showNotice(kind, text) {
  notice.hidden = !text;
  notice.className = `notice ${kind}`;
  notice.textContent = text || "";
}

function detailHref(conn, uri) {
  return `#/backup?${query({ conn, uri })}`;
}

// -- the list -------------------------------------------------------------------------------
async function renderList() {
  main.replaceChildren(el("p", { class: "muted", text: "Loading…" }));
  databases = await api("api/databases");
  document.getElementById("who").textContent = `signed in as ${databases.user}`;
  const sections = [];
  if (databases.error) sections.push(el("p", { class: "error", id: "settings-error", text: databases.error }));
  for (const db of databases.databases) sections.push(databaseSection(db));
  main.replaceChildren(...sections);
}

function databaseSection(db) {
  const history = el("div", { class: "history" }, el("div", { class: "muted", text: "Loading history…" }));
  const section = el("section", { class: "database", "data-conn": db.conn_id },
    el("h2", {}, "Database ", el("code", { text: db.conn_id }),
      db.storage_conn_id ? el("span", { class: "muted", text: ` · storage ${db.storage_conn_id}` }) : null),
    history);
  loadHistory(db.conn_id, history);
  for (const prefix of db.prefixes) section.append(prefixBlock(db.conn_id, prefix));
  return section;
}

async function loadHistory(conn, box) {
  try {
    const h = await api(`api/history?${query({ conn_id: conn })}`);
    const item = (label, content) => el("div", {}, el("span", { class: "label", text: label }), content);
    const run = (r) => r ? el("span", {}, runLink(r, `${r.dag_id} · ${r.run_id}`), " ",
      badge(r.task_state, `task ${r.task_state || "–"}`), " ", badge(r.run_state, `run ${r.run_state || "–"}`))
      : el("span", { class: "muted", text: "none yet" });
    const current = h.current.error
      ? el("span", { class: "error", text: `cannot read: ${h.current.error}` })
      : el("code", { class: "current-revision", text: h.current.revision || "(no revision)" });
    box.replaceChildren(
      item("Current revision", current),
      item("Last backup", run(h.runs.backup)),
      item("Last rehearsal", run(h.runs.rehearsal)),
      item("Last upgrade", run(h.runs.upgrade)));
    box.dataset.loaded = "1";
  } catch (e) {
    box.replaceChildren(el("p", { class: "error", text: `History: ${e.message}` }));
  }
}

function prefixBlock(conn, prefix) {
  const body = el("tbody");
  const status = el("div", { class: "status" });
  const more = el("button", { class: "more", hidden: true, text: "More" });
  const table = el("table", { class: "backups" },
    el("thead", {}, el("tr", {},
      ["Time", "Size", "Tables", "Rows", "Revision", "Verified", "Run"].map(
        (h, i) => el("th", { class: i > 0 && i < 4 ? "num" : null, text: h })))),
    body);
  const block = el("div", { class: "prefix", "data-prefix": prefix }, el("h3", { text: prefix }), table, status, more);
  let offset = 0;
  const load = async () => {
    more.disabled = true;
    try {
      const page = await api(`api/backups?${query({ conn_id: conn, prefix, offset, limit: 25 })}`);
      status.replaceChildren();
      if (page.error) status.append(el("p", { class: "error prefix-error", text: page.error }));
      if (page.truncated) status.append(el("p", { class: "warning", text: `${page.truncated}; narrow the prefix to see every backup` }));
      if (!page.error && page.found === 0) status.append(el("p", { class: "muted", text: "No backups under this prefix yet." }));
      for (const row of page.backups) body.append(backupRow(conn, row));
      offset = page.next_offset;
      more.hidden = offset === null;
      block.dataset.loaded = "1";
    } catch (e) {
      status.replaceChildren(el("p", { class: "error prefix-error", text: e.message }));
    } finally {
      more.disabled = false;
    }
  };
  more.addEventListener("click", load);
  load();
  return block;
}

function backupRow(conn, b) {
  const link = el("a", { href: detailHref(conn, b.uri), text: when(b.created_at), title: b.uri });
  if (b.state === "damaged") {
    return el("tr", { class: "backup damaged", "data-uri": b.uri },
      el("td", {}, link), el("td", { colspan: 6 }, badge("damaged"), " ", el("span", { text: b.problem })));
  }
  if (b.locked) {
    // Encrypted, and no configured key opens it: what its manifest says in the clear.
    return el("tr", { class: "backup locked", "data-uri": b.uri },
      el("td", {}, link),
      el("td", { class: "num", text: bytes(b.size) }),
      el("td", { colspan: 3 }, badge("encrypted", "encrypted"), " ", el("span", { class: "muted key-problem", text: b.key_problem || "" })),
      el("td", { class: "verified" }, verification(b.verification)),
      el("td", {}, runLink(b.run)));
  }
  return el("tr", { class: "backup", "data-uri": b.uri },
    el("td", {}, link),
    el("td", { class: "num", text: bytes(b.size) }),
    el("td", { class: "num", text: b.tables }),
    el("td", { class: "num", text: b.rows }),
    el("td", {}, el("code", { text: b.revision || "–" })),
    el("td", { class: "verified" }, verification(b.verification)),
    el("td", {}, runLink(b.run)));
}

// -- one backup -----------------------------------------------------------------------------
async function renderBackup(conn, uri) {
  main.replaceChildren(el("p", { class: "muted", text: "Loading…" }));
  if (!databases) databases = await api("api/databases");
  document.getElementById("who").textContent = `signed in as ${databases.user}`;
  const found = await api(`api/backup?${query({ conn_id: conn, uri })}`);
  const b = found.backup;
  const message = el("div", { id: "action-message" });
  const canTrigger = found.can_trigger;
  const why = canTrigger ? null : `Your role may not trigger ${databases.restore_dag_id}: Verify and Restore are refused.`;
  const verifyButton = el("button", { id: "verify", class: "primary", text: "Verify", disabled: !canTrigger, title: why });
  const restoreButton = el("button", { id: "restore", class: "danger", text: "Restore…", disabled: !canTrigger || b.state !== "complete", title: why });
  verifyButton.addEventListener("click", () => verify(conn, b.uri, message, verifyButton));
  restoreButton.addEventListener("click", () => openRestore(conn, b.uri, message));
  const dl = el("dl", { class: "summary" });
  for (const [label, value] of [
    ["State", b.state === "complete" ? badge("ok", "complete") : el("span", {}, badge("damaged"), " ", el("span", { class: "problem", text: b.problem }))],
    ["Taken", when(b.created_at)],
    ["Size", bytes(b.size)],
    ["Tables", b.tables ?? "–"],
    ["Rows", b.rows ?? "–"],
    ["Alembic revision", el("code", { text: b.revision || "–" })],
    ["Database", `${b.database || "–"} (${b.dialect || "–"})`],
    ["Parts", b.parts ?? "single stream"],
    ["Encryption", encryptionSummary(b)],
    ["Taken by run", b.run ? el("span", {}, runLink(b.run, `${b.run.dag_id} · ${b.run.run_id}`), " ", badge(b.run.state)) : "unknown"],
    ["Verified", el("span", { id: "verification" }, verification(b.verification),
      b.verification && b.verification.error ? el("div", { class: "error", text: b.verification.error }) : null)],
  ]) dl.append(el("dt", { text: label }), el("dd", {}, value));
  const contents = el("div", { id: "contents" }, el("p", { class: "muted", text: "Reading the dump for its tables and objects…" }));
  main.replaceChildren(
    el("p", {}, el("a", { href: "#/", text: "← All backups" })),
    el("h2", {}, "Backup ", el("code", { id: "backup-uri", text: b.uri })),
    el("p", { class: "muted", text: `Database connection ${conn}` }),
    dl,
    el("div", { class: "actions" }, verifyButton, restoreButton, why ? el("span", { class: "muted", id: "why-disabled", text: why }) : null),
    message,
    contents);
  if (b.verification && b.verification.state === "running") pollVerification(conn, b.uri, message, verifyButton);
  loadContents(conn, b.uri, contents);
}

function encryptionSummary(b) {
  if (!b.encrypted) return "none (plaintext)";
  const e = b.encryption;
  const key = e ? `${e.key_provider} key ${e.key_id}` : `key ${b.key_id || "–"}`;
  const text = e ? `${e.algorithm}, envelope v${e.version}, ${key}, sealed ${when(e.created_at)}` : key;
  return el("span", { id: "encryption" }, text,
    b.locked && b.key_problem ? el("div", { class: "warning", id: "key-problem", text: b.key_problem }) : null);
}

async function loadContents(conn, uri, box) {
  try {
    const c = await api(`api/backup/contents?${query({ conn_id: conn, uri })}`);
    if (c.locked) {
      // Encrypted, and no configured key opens it: its envelope's header and why, nothing more.
      const e = c.encryption || {};
      box.replaceChildren(
        el("p", { class: "warning", id: "contents-locked", text: c.locked }),
        el("dl", { class: "summary envelope" },
          ...[["Key", `${e.key_provider || "–"} key ${e.key_id || "–"}`], ["Envelope version", e.version ?? "–"],
            ["Algorithm", e.algorithm || "–"], ["Sealed", when(e.created_at)]]
            .flatMap(([label, value]) => [el("dt", { text: label }), el("dd", { text: String(value) })])));
      box.dataset.loaded = "1";
      return;
    }
    const parts = [];
    if (c.error) parts.push(el("p", { class: "error", id: "contents-error", text: `The dump could not be read whole: ${c.error}` }));
    parts.push(el("h3", { text: `Tables (${c.tables.length})` }));
    parts.push(el("table", { class: "tables" },
      el("thead", {}, el("tr", {}, el("th", { text: "Table" }), el("th", { class: "num", text: "Columns" }),
        el("th", { class: "num", text: "Rows" }), el("th", { class: "num", text: "Bytes" }))),
      el("tbody", {}, c.tables.map((t) => el("tr", { "data-table": t.name },
        el("td", {}, el("code", { text: t.name })), el("td", { class: "num", text: t.columns }),
        el("td", { class: "num", text: t.rows }), el("td", { class: "num", text: bytes(t.bytes) }))))));
    const kinds = Object.entries(c.objects);
    parts.push(el("h3", { text: "Objects" }));
    parts.push(kinds.length
      ? el("table", { class: "objects" }, el("thead", {}, el("tr", {}, el("th", { text: "Kind" }), el("th", { class: "num", text: "Count" }))),
        el("tbody", {}, kinds.map(([k, n]) => el("tr", { "data-kind": k }, el("td", { text: k }), el("td", { class: "num", text: n })))))
      : el("p", { class: "muted", id: "no-objects", text: "No views, triggers, routines or other objects besides tables." }));
    box.replaceChildren(...parts);
    box.dataset.loaded = "1";
  } catch (e) {
    box.replaceChildren(el("p", { class: "error", id: "contents-error", text: e.message }));
    box.dataset.loaded = "1";
  }
}

async function verify(conn, uri, message, button) {
  button.disabled = true;
  message.replaceChildren(el("p", { class: "muted", text: "Verifying: the whole dump is read and checked as a restore would…" }));
  try {
    const answer = await api("api/verify", { method: "POST", body: JSON.stringify({ conn_id: conn, uri }) });
    if (answer.state === "cannot_verify") {
      // An encrypted dump no configured key opens: nothing was verified, nothing recorded.
      message.replaceChildren(el("p", { class: "warning", id: "verify-result", text: answer.error }));
      button.disabled = false;
      return;
    }
    pollVerification(conn, uri, message, button);
  } catch (e) {
    message.replaceChildren(el("p", { class: "error", id: "verify-error", text: e.message }));
    button.disabled = false;
  }
}

async function pollVerification(conn, uri, message, button) {
  button.disabled = true;
  for (;;) {
    await new Promise((resolve) => setTimeout(resolve, 1000));
    let found;
    try {
      found = await api(`api/backup?${query({ conn_id: conn, uri })}`);
    } catch (e) {
      message.replaceChildren(el("p", { class: "error", text: e.message }));
      break;
    }
    const v = found.backup.verification;
    if (v && v.state !== "running") {
      const box = document.getElementById("verification");
      box.replaceChildren(verification(v));
      message.replaceChildren(v.ok
        ? el("p", { class: "success", id: "verify-result", text: `Verified: ${v.summary || "OK"}` })
        : el("p", { class: "error", id: "verify-result", text: `Verification failed: ${v.error}` }));
      break;
    }
  }
  button.disabled = false;
}

function openRestore(conn, uri, message) {
  const dialog = document.getElementById("restore-dialog");
  const target = document.getElementById("restore-target");
  const question = document.getElementById("restore-question");
  const list = document.getElementById("restore-targets");
  document.getElementById("restore-dag").textContent = databases.restore_dag_id;
  list.replaceChildren(...databases.databases.map((d) => el("option", { value: d.conn_id })));
  target.value = conn;
  const ask = () => {
    question.textContent = `Restore ${uri} into the database of connection ${target.value || "…"}?`;
  };
  target.oninput = ask;
  ask();
  dialog.onclose = async () => {
    if (dialog.returnValue !== "confirm" || !target.value) return;
    message.replaceChildren(el("p", { class: "muted", text: "Triggering the restore…" }));
    try {
      const run = await api("api/restore", {
        method: "POST",
        body: JSON.stringify({ conn_id: conn, uri, target_conn_id: target.value }),
      });
      const parts = [el("p", { class: "success", id: "restore-result" },
        `Restore of ${uri} into ${target.value} triggered: `,
        el("a", { href: `../${run.link}`, target: "_top", id: "restore-run", "data-run-id": run.run_id, text: `${run.dag_id} · ${run.run_id}` }))];
      if (run.paused) parts.push(el("p", { class: "warning", text: `${run.dag_id} is paused: the run waits until it is unpaused.` }));
      message.replaceChildren(...parts);
    } catch (e) {
      message.replaceChildren(el("p", { class: "error", id: "restore-error", text: e.message }));
    }
  };
  dialog.returnValue = "";
  dialog.showModal();
}

// -- routing --------------------------------------------------------------------------------
async function route() {
  showNotice("", "");
  const hash = location.hash || "#/";
  try {
    if (hash.startsWith("#/backup?")) {
      const params = new URLSearchParams(hash.slice("#/backup?".length));
      await renderBackup(params.get("conn"), params.get("uri"));
    } else {
      await renderList();
    }
  } catch (e) {
    main.replaceChildren(el("p", { class: "error", id: "page-error", text: e.message }));
  }
}

window.addEventListener("hashchange", route);
route();
