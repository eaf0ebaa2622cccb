// The sandbox page plays Slack's client. What a person does goes to the stand-in Slack's
// /client/* routes, which sign it and send it to the bot as Slack does; what the person
// sees comes back from /client/state (a long poll), rendered from the bot's Block Kit.
"use strict";

const EMOJI = {
  warning: "⚠️", no_entry: "⛔", mag: "🔍", hourglass: "⌛", hourglass_flowing_sand: "⏳",
  white_check_mark: "✅", x: "❌", octagonal_sign: "🛑", outbox_tray: "📤",
  information_source: "ℹ️", checkered_flag: "🏁", rotating_light: "🚨", raised_hand: "✋",
  lock: "🔒", grey_question: "❔", bust_in_silhouette: "👤",
};
const COLOURS = ["#2a80b9", "#e8912d", "#7b4397", "#2bac76", "#cd2553", "#4a154b"];

const page = {
  workspace: null, user: "", version: -1, state: null, poll: null, openMenu: "",
  seen: null, // the ts of every message rendered so far; null before the first render
  newReply: "", // the ts of a reply that arrived out of view, which the pill points at
  highlighted: "", // the ts of the message a permalink or the pill brought into view
};

// Small DOM helpers: text always goes in as text, never as HTML.

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (value !== undefined && value !== null && value !== false) node.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined) {
      node.append(typeof child === "string" ? document.createTextNode(child) : child);
    }
  }
  return node;
}

function unescapeSlack(text) {
  return text.replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&amp;/g, "&");
}

function displayName(id) {
  return (page.workspace && page.workspace.directory[id]) || id;
}

// mrkdwn: code spans and blocks, <links|and> <@mentions>, *bold* _italic_ ~strike~, :emoji:.

function mrkdwn(text) {
  // Code spans and links are atoms: set aside first, so *bold* may surround them and
  // nothing inside them is styled.
  const atoms = [];
  const marked = String(text).replace(/```[\s\S]*?```|`[^`\n]+`|<[^<>]+>/g, (atom) => {
    atoms.push(atom);
    return "\uE000" + (atoms.length - 1) + "\uE001";
  });
  return styled(marked, atoms);
}

function atom(source) {
  if (source.startsWith("```")) return el("pre", {}, unescapeSlack(source.slice(3, -3)));
  if (source.startsWith("`")) return el("code", {}, unescapeSlack(source.slice(1, -1)));
  const [target, label] = source.slice(1, -1).split(/\|(.*)/s);
  return linkOrMention(target, label);
}

function linkOrMention(target, label) {
  if (target.startsWith("@")) return el("span", { class: "mention" }, "@" + displayName(target.slice(1)));
  if (target.startsWith("#")) {
    const channel = page.workspace.channel;
    const name = target.slice(1) === channel.id ? channel.name : (label || target.slice(1));
    return el("span", { class: "mention" }, "#" + name);
  }
  if (target.startsWith("!subteam^")) {
    const id = target.slice(9);
    return el("span", { class: "mention" }, "@" + (page.workspace.usergroups[id] || label || id));
  }
  if (target.startsWith("!date^")) return dateToken(target, label);
  if (target.startsWith("!")) return el("span", { class: "mention" }, "@" + target.slice(1));
  const url = unescapeSlack(target);
  if (!/^https?:\/\//.test(url)) return document.createTextNode(unescapeSlack(label || target));
  const here = location.origin + location.pathname;
  if (url.startsWith(here + "#")) {
    // A permalink to this page (the stand-in's chat.getPermalink): opens the thread here.
    return el("a", { href: url.slice(here.length), class: "permalink" }, unescapeSlack(label || url));
  }
  return el("a", { href: url, target: "_blank", rel: "noopener" }, unescapeSlack(label || url));
}

// <!date^EPOCH^FORMAT^LINK|fallback>: a time in the reader's own zone, as Slack shows it.
function dateToken(target, fallback) {
  const [, epoch, format = "", link] = target.split("^");
  const when = new Date(Number(epoch) * 1000);
  if (!/^\d+$/.test(epoch || "") || Number.isNaN(when.getTime())) {
    return document.createTextNode(unescapeSlack(fallback || ""));
  }
  const text = unescapeSlack(format).replace(/\{(\w+)\}/g, (all, token) => dateText(when, token) ?? all);
  const attrs = { class: "date", title: when.toString() };
  if (link && /^https?:\/\//.test(unescapeSlack(link))) {
    return el("a", { ...attrs, href: unescapeSlack(link), target: "_blank", rel: "noopener" }, text);
  }
  return el("span", attrs, text);
}

function ordinal(day) {
  const tens = day % 100;
  if (tens >= 11 && tens <= 13) return day + "th";
  return day + ({ 1: "st", 2: "nd", 3: "rd" }[day % 10] || "th");
}

function dateText(when, token) {
  const part = (options) => when.toLocaleString("en-US", options);
  const month = part({ month: "long" });
  const year = when.getFullYear();
  const pad = (n) => String(n).padStart(2, "0");
  const plain = {
    date_num: `${year}-${pad(when.getMonth() + 1)}-${pad(when.getDate())}`,
    date: `${month} ${ordinal(when.getDate())}, ${year}`,
    date_short: `${part({ month: "short" })} ${when.getDate()}, ${year}`,
    date_long: `${part({ weekday: "long" })}, ${month} ${ordinal(when.getDate())}, ${year}`,
    time: part({ hour: "numeric", minute: "2-digit" }),
    time_secs: part({ hour: "numeric", minute: "2-digit", second: "2-digit" }),
    ago: ago(when),
  };
  const pretty = token.match(/^(date(?:_short|_long)?)_pretty$/);
  if (pretty) return relativeDay(when) || plain[pretty[1]];
  return plain[token];
}

function relativeDay(when) {
  const day = (d) => new Date(d.getFullYear(), d.getMonth(), d.getDate()).getTime();
  const days = Math.round((day(when) - day(new Date())) / 86400000);
  return { 0: "today", [-1]: "yesterday", 1: "tomorrow" }[days] || "";
}

function ago(when) {
  const seconds = Math.round((Date.now() - when.getTime()) / 1000);
  const size = Math.abs(seconds);
  const [count, unit] = size < 60 ? [size, "second"] : size < 3600 ? [Math.floor(size / 60), "minute"]
    : size < 86400 ? [Math.floor(size / 3600), "hour"] : [Math.floor(size / 86400), "day"];
  const words = `${count} ${unit}${count === 1 ? "" : "s"}`;
  return seconds >= 0 ? `${words} ago` : `in ${words}`;
}

function styled(text, atoms) {
  // *bold*, _italic_, ~strike~ only at word boundaries, as Slack does.
  const out = document.createDocumentFragment();
  const pattern = /([*_~])(\S(?:[^\n]*?\S)?)\1/g;
  let last = 0;
  let match;
  while ((match = pattern.exec(text)) !== null) {
    const before = match.index === 0 ? "" : text[match.index - 1];
    const after = text[match.index + match[0].length] || "";
    if (/\w/.test(before) || /\w/.test(after)) {
      pattern.lastIndex = match.index + 1;
      continue;
    }
    out.append(plain(text.slice(last, match.index), atoms));
    const tag = { "*": "b", _: "i", "~": "s" }[match[1]];
    out.append(el(tag, {}, styled(match[2], atoms)));
    last = match.index + match[0].length;
  }
  out.append(plain(text.slice(last), atoms));
  return out;
}

function plain(text, atoms = []) {
  const out = document.createDocumentFragment();
  text.split(/\uE000(\d+)\uE001/).forEach((part, i) => {
    if (i % 2 === 1) {
      out.append(atom(atoms[Number(part)]));
      return;
    }
    const withEmoji = unescapeSlack(part).replace(/:([a-z0-9_+-]+):/g, (all, code) => EMOJI[code] || all);
    withEmoji.split("\n").forEach((line, j) => {
      if (j > 0) out.append(el("br"));
      out.append(document.createTextNode(line));
    });
  });
  return out;
}

function textObject(object) {
  if (!object) return document.createTextNode("");
  if (object.type === "mrkdwn") return mrkdwn(object.text || "");
  return plain((object.text || "").replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;"));
}

// Block Kit. `surface` says where a button sends its click: a message or a modal.

function renderBlocks(blocks, surface, errors = {}) {
  return el("div", { class: "blocks" }, (blocks || []).map((block) => renderBlock(block, surface, errors)));
}

function renderBlock(block, surface, errors) {
  switch (block.type) {
    case "section": {
      const content = block.fields
        ? el("div", { class: "fields" }, block.fields.map((f) => el("div", {}, textObject(f))))
        : el("div", { class: "text" }, textObject(block.text));
      if (block.fields && block.text) content.prepend(el("div", { class: "text" }, textObject(block.text)));
      const accessory = block.accessory ? renderElement(block.accessory, block, surface) : null;
      return el("div", { class: "block block-section" }, content, accessory);
    }
    case "context":
      return el("div", { class: "block block-context" },
        (block.elements || []).map((e) => (e.type === "image" ? el("span", {}, e.alt_text || "") : el("span", {}, textObject(e)))));
    case "divider":
      return el("hr", { class: "block-divider" });
    case "header":
      return el("div", { class: "block block-header" }, textObject(block.text));
    case "actions":
      return el("div", { class: "block block-actions" },
        (block.elements || []).map((e) => renderElement(e, block, surface)));
    case "input":
      return renderInput(block, errors[block.block_id]);
    case "image":
      return el("div", { class: "block" }, "[image: " + (block.alt_text || "") + "]");
    default:
      return el("div", { class: "block block-unsupported" }, "[block type " + block.type + " is not shown in the sandbox]");
  }
}

function renderElement(element, block, surface) {
  if (element.type === "button") {
    const button = el("button", {
      type: "button", class: "sk-button " + (element.style || ""),
      "data-action-id": element.action_id, "data-value": element.value || "",
    }, textObject(element.text));
    button.addEventListener("click", async () => {
      if (element.url) window.open(element.url, "_blank", "noopener");
      button.disabled = true;
      try {
        await surface.act({ action_id: element.action_id, block_id: block.block_id || "", value: element.value || "" });
      } finally {
        button.disabled = false;
      }
    });
    return button;
  }
  if (element.type === "static_select") {
    const select = el("select", { "data-action-id": element.action_id },
      el("option", { value: "" }, (element.placeholder && element.placeholder.text) || "Choose…"),
      (element.options || []).map((o) => el("option", { value: o.value }, o.text.text)));
    select.addEventListener("change", () => {
      const option = (element.options || []).find((o) => o.value === select.value);
      if (option) surface.act({ action_id: element.action_id, block_id: block.block_id || "", selected_option: option });
    });
    return select;
  }
  return el("span", { class: "block-unsupported" }, "[element " + element.type + "]");
}

function renderInput(block, error) {
  const element = block.element || {};
  const id = "input-" + block.block_id;
  let control;
  if (element.type === "static_select") {
    control = el("select", { id }, el("option", { value: "" }, "Choose…"),
      (element.options || []).map((o) => el("option", { value: o.value }, o.text.text)));
  } else if (element.multiline) {
    control = el("textarea", { id, rows: 3 }, element.initial_value || "");
  } else {
    control = el("input", { id, value: element.initial_value || "" });
  }
  control.dataset.blockId = block.block_id;
  control.dataset.actionId = element.action_id;
  control.dataset.type = element.type;
  return el("div", { class: "block input-block" },
    el("label", { for: id }, textObject(block.label), block.optional ? " (optional)" : ""),
    control,
    block.hint ? el("div", { class: "hint" }, textObject(block.hint)) : null,
    error ? el("div", { class: "error" }, error) : null);
}

function inputValues(root) {
  const values = {};
  for (const control of root.querySelectorAll("[data-block-id]")) {
    const { blockId, actionId, type } = control.dataset;
    let value = { type, value: control.value };
    if (type === "static_select") {
      value = { type, selected_option: control.value ? { value: control.value, text: { type: "plain_text", text: control.selectedOptions[0].text } } : null };
    }
    values[blockId] = { [actionId]: value };
  }
  return values;
}

// Talking to the stand-in Slack.

async function client(route, fields) {
  const response = await fetch("/client/" + route, {
    method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ user: page.user, ...fields }),
  });
  return response.json();
}

async function pollState() {
  const controller = new AbortController();
  page.poll = controller;
  while (page.poll === controller) {
    try {
      const url = `/client/state?user=${encodeURIComponent(page.user)}&since=${page.version}`;
      const response = await fetch(url, { signal: controller.signal });
      const state = await response.json();
      if (page.poll !== controller) return;
      page.version = state.version;
      page.state = state;
      render();
    } catch (error) {
      if (controller.signal.aborted) return;
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
}

function switchUser(user) {
  if (page.poll) page.poll.abort();
  page.user = user;
  page.version = -1;
  page.seen = null;
  page.newReply = "";
  localStorage.setItem("cancel-op-sandbox-user", user);
  pollState();
}

// The channel, its threads, the person's ephemeral messages and modals.

function tsKey(ts) {
  const [seconds, counter] = ts.split(".");
  return Number(seconds) * 1e6 + Number(counter);
}

function render() {
  const fresh = renderMessages();
  pointAtNewReplies(fresh);
  showLinkedThread();
  renderModal();
}

function renderMessages() {
  const state = page.state;
  const channel = page.workspace.channel.id;
  const items = [
    ...state.messages.filter((m) => m.channel === channel || m.channel === "D" + page.user.slice(1)),
    ...state.ephemerals.map((e) => ({ ...e, ephemeral: true })),
  ].sort((a, b) => tsKey(a.ts) - tsKey(b.ts));
  const top = items.filter((m) => !m.thread_ts || m.thread_ts === m.ts);
  const list = document.getElementById("messages");
  const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 80;
  list.replaceChildren(...top.map((message) => {
    const replies = items.filter((r) => r.thread_ts === message.ts && r.ts !== message.ts);
    const node = renderMessage(message);
    if (replies.length) {
      node.append(el("div", { class: "thread", "data-thread": message.ts },
        el("div", { class: "thread-label" }, replies.length + (replies.length === 1 ? " reply" : " replies")),
        replies.map(renderMessage)));
    }
    return node;
  }));
  if (atBottom) list.scrollTop = list.scrollHeight;
  const fresh = page.seen ? items.filter((m) => !page.seen.has(m.ts)) : [];
  page.seen = new Set(items.map((m) => m.ts));
  return fresh;
}

// Where a message is against the visible part of the list: "above", "below" or "".
function outOfView(node) {
  const list = document.getElementById("messages").getBoundingClientRect();
  const box = node.getBoundingClientRect();
  if (box.bottom <= list.top) return "above";
  if (box.top >= list.bottom) return "below";
  return "";
}

function messageNode(ts) {
  return document.querySelector(`#messages article[data-ts="${CSS.escape(ts)}"]`);
}

// A reply in a thread out of view gets a pill that scrolls to it, as Slack's client does.
function pointAtNewReplies(fresh) {
  for (const reply of fresh) {
    if (!reply.thread_ts || reply.thread_ts === reply.ts) continue;
    const node = messageNode(reply.ts);
    const where = node ? outOfView(node) : "";
    if (where) {
      page.newReply = reply.ts;
      const pill = document.getElementById("new-reply");
      pill.textContent = where === "above" ? "New reply in a thread above ↑" : "New reply in a thread below ↓";
    }
  }
  hidePillOnceSeen();
}

function hidePillOnceSeen() {
  const node = page.newReply ? messageNode(page.newReply) : null;
  if (node && outOfView(node)) {
    const pill = document.getElementById("new-reply");
    pill.style.top = document.getElementById("messages").offsetTop + 10 + "px"; // under the header
    pill.hidden = false;
    return;
  }
  page.newReply = "";
  document.getElementById("new-reply").hidden = true;
}

function goToNewReply() {
  const node = page.newReply ? messageNode(page.newReply) : null;
  if (node) highlight(node.closest("#messages > article"));
  hidePillOnceSeen();
}

// A permalink to this page, `#thread=CHANNEL/TS`: scroll to that thread and highlight it.
function showLinkedThread() {
  const linked = location.hash.match(/^#thread=([^/]+)\/(\d+\.\d+)$/);
  if (!linked || !page.state) return;
  const node = messageNode(linked[2]);
  if (!node) return; // not shown yet: tried again on the next render
  history.replaceState(null, "", location.pathname + location.search); // the same link works twice
  highlight(node.closest("#messages > article"));
}

function highlight(node) {
  page.highlighted = node.dataset.ts;
  node.classList.add("highlighted");
  node.scrollIntoView({ block: "center" });
  setTimeout(() => {
    if (page.highlighted !== node.dataset.ts) return;
    page.highlighted = "";
    const shown = messageNode(node.dataset.ts);
    if (shown) shown.classList.remove("highlighted");
  }, 4000);
}

function renderMessage(message) {
  const name = displayName(message.author);
  const isApp = ["U0BOT", "U0ALERTS", "USLACKBOT"].includes(message.author);
  const colour = COLOURS[[...message.author].reduce((a, c) => a + c.charCodeAt(0), 0) % COLOURS.length];
  const time = new Date(Number(message.ts.split(".")[0]) * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  const surface = {
    act: (action) => client("action", { channel: message.channel, ts: message.ts, ephemeral: !!message.ephemeral, ...action }),
  };
  const node = el("article", {
    class: "message" + (message.ephemeral ? " ephemeral" : "") + (page.highlighted === message.ts ? " highlighted" : ""),
    "data-ts": message.ts,
    "data-author": message.author,
  },
  el("div", { class: "avatar", style: `background:${colour}` }, name[0].toUpperCase()),
  el("div", {}, el("span", { class: "author" }, name), isApp ? el("span", { class: "app-badge" }, "APP") : null,
    el("span", { class: "time" }, time)),
  message.ephemeral ? el("div", { class: "ephemeral-note" }, "Only visible to you") : null,
  message.blocks && message.blocks.length ? renderBlocks(message.blocks, surface) : el("div", { class: "block" }, mrkdwn(message.text)));
  if (!message.ephemeral) node.append(messageMenu(message));
  return node;
}

function messageMenu(message) {
  const shortcut = page.workspace.shortcut;
  const wrapper = el("div");
  const open = page.openMenu === message.ts;
  wrapper.append(el("button", {
    type: "button", class: "message-menu", title: "More actions", "aria-label": "More actions",
    onclick: () => { page.openMenu = open ? "" : message.ts; renderMessages(); },
  }, "⋯"));
  if (open) {
    wrapper.append(el("div", { class: "menu", role: "menu" }, el("button", {
      type: "button", role: "menuitem",
      onclick: () => {
        page.openMenu = "";
        renderMessages();
        client("shortcut", { channel: message.channel, ts: message.ts, callback_id: shortcut.callback_id });
      },
    }, shortcut.name)));
  }
  return wrapper;
}

// Esc closes the top modal and so does a click outside it, as Close does: the stand-in
// tells the bot (view_closed) only where the view set notify_on_close, as Slack does.
function closeTopModal() {
  const modals = page.state ? page.state.modals : [];
  if (modals.length) client("close", { view_id: modals[modals.length - 1].id });
}

function renderModal() {
  const layer = document.getElementById("modal-layer");
  const modals = page.state.modals;
  if (!modals.length) {
    layer.hidden = true;
    layer.replaceChildren();
    return;
  }
  const view = modals[modals.length - 1];
  const errors = view.errors || {};
  const surface = { act: (action) => client("action", { view_id: view.id, ...action }) };
  const body = el("div", { class: "modal-body" },
    errors[""] ? el("div", { class: "error" }, errors[""]) : null,
    renderBlocks(view.blocks, surface, errors));
  const footer = el("div", { class: "modal-footer" },
    el("button", { type: "button", class: "sk-button", "data-modal": "close",
      onclick: () => client("close", { view_id: view.id }) },
    textObject(view.close || { type: "plain_text", text: "Cancel" })),
    view.submit ? el("button", { type: "button", class: "sk-button primary", "data-modal": "submit",
      onclick: (event) => {
        event.target.disabled = true;
        client("submit", { view_id: view.id, values: inputValues(body) });
      } }, textObject(view.submit)) : null);
  layer.replaceChildren(el("div", { class: "modal", role: "dialog", "aria-modal": "true", "data-view-id": view.id },
    el("div", { class: "modal-title" }, textObject(view.title)), body, footer));
  layer.hidden = false;
}

// The composer: a /command goes to Slack as a slash command; anything else is a message.

async function send(event) {
  event.preventDefault();
  const input = document.getElementById("composer-input");
  const text = input.value.trim();
  if (!text) return;
  input.value = "";
  const channel = page.workspace.channel.id;
  const command = text.match(/^(\/\S+)\s*([\s\S]*)$/);
  if (command) {
    await client("command", { channel, command: command[1], text: command[2] });
  } else {
    await client("message", { channel, text });
  }
}

// The Operations API stand-in: what Google has, polled.

function operationState(op) {
  if (!op.done) return op.cancel_requested ? ["running", "running, cancel requested"] : ["running", "running"];
  if (op.error && op.error.code === 1) return ["cancelled", "CANCELLED"];
  if (op.error) return ["failed", "failed (code " + op.error.code + ")"];
  return ["completed", "completed"];
}

async function refreshOperations() {
  try {
    const operations = await (await fetch("/sandbox/operations")).json();
    document.getElementById("operations").replaceChildren(...operations.map((op) => {
      const [kind, label] = operationState(op);
      return el("div", { class: "operation", "data-name": op.name },
        el("div", { class: "op-name" }, op.name),
        el("div", { class: "op-row" },
          el("span", {}, op.verb + " · " + behaviourLabel(op.behaviour)),
          el("span", { class: "badge " + kind, "data-state": kind }, label)),
        op.status_message ? el("div", { class: "op-status hint" }, op.status_message) : null,
        el("div", { class: "op-row" },
          el("span", { class: "hint" }, op.gets + " GET" + (op.gets === 1 ? "" : "s")),
          el("button", { type: "button", class: "link-button", onclick: () => fillComposer(op.name) }, "/cancel-op this")),
        ...callsAs(op.calls_as || {}));
    }));
  } catch (error) {
    // The sandbox is stopping; the next refresh says so by failing again.
  }
}

// Which identity each Google call about an operation carried: a service account's token
// (a binding with `impersonate`) or the bot's own credentials.
function callsAs(byIdentity) {
  return Object.entries(byIdentity).map(([identity, calls]) => {
    const counts = Object.entries(calls).map(([kind, n]) => n + " " + kind + (n === 1 ? "" : "s")).join(", ");
    const who = identity ? "as " + identity : "with the bot's own credentials";
    return el("div", { class: "op-identity hint", "data-identity": identity }, counts + " " + who);
  });
}

// The IAM Credentials stand-in: tokens minted for the impersonated account, and a switch
// that makes it refuse them (PERMISSION_DENIED), as when the bot lacks Token Creator.
async function refreshIam() {
  try {
    showIam(await (await fetch("/sandbox/iam")).json());
  } catch (error) {
    // As above: the sandbox is stopping.
  }
}

function showIam(iam) {
  document.getElementById("iam").replaceChildren(
    el("div", { class: "op-name" }, iam.account),
    el("div", { class: "op-row" },
      el("span", { class: "hint", id: "iam-counts" },
        iam.minted + " token" + (iam.minted === 1 ? "" : "s") + " minted, " + iam.refused + " refused"),
      el("button", { type: "button", class: "link-button", id: "iam-toggle",
        onclick: () => setRefusal(!iam.refusing) },
      iam.refusing ? "Allow again" : "Refuse (PERMISSION_DENIED)")));
}

async function setRefusal(refuse) {
  const answer = await fetch("/sandbox/iam", {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ refuse }),
  });
  showIam(await answer.json());
}

function behaviourLabel(value) {
  const found = page.workspace.behaviours.find((b) => b.value === value);
  return found ? found.label : value;
}

function fillComposer(name) {
  const input = document.getElementById("composer-input");
  input.value = "/cancel-op " + name;
  input.focus();
}

async function raiseAlert(event) {
  event.preventDefault();
  const behaviour = document.getElementById("raise-behaviour").value;
  await fetch("/sandbox/alerts", {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ behaviour }),
  });
  refreshOperations();
}

async function start() {
  page.workspace = await (await fetch("/sandbox/workspace")).json();
  const channel = page.workspace.channel;
  document.getElementById("channel-link").textContent = "# " + channel.name;
  document.getElementById("channel-title").textContent = "# " + channel.name;
  document.getElementById("composer-input").placeholder = `Message #${channel.name} — try /cancel-op help`;
  const saved = localStorage.getItem("cancel-op-sandbox-user");
  const first = page.workspace.users.some((u) => u.id === saved) ? saved : page.workspace.users[0].id;
  document.getElementById("users").replaceChildren(...page.workspace.users.map((user) => el("label", { class: "user-choice" },
    el("input", { type: "radio", name: "user", value: user.id, checked: user.id === first,
      onchange: () => switchUser(user.id) }),
    user.label)));
  document.getElementById("raise-behaviour").replaceChildren(
    ...page.workspace.behaviours.map((b) => el("option", { value: b.value }, b.label)));
  document.getElementById("composer").addEventListener("submit", send);
  document.getElementById("raise").addEventListener("submit", raiseAlert);
  document.getElementById("new-reply").addEventListener("click", goToNewReply);
  document.getElementById("messages").addEventListener("scroll", hidePillOnceSeen);
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape") closeTopModal();
  });
  const layer = document.getElementById("modal-layer");
  layer.addEventListener("click", (event) => {
    if (event.target === layer) closeTopModal();
  });
  window.addEventListener("hashchange", showLinkedThread);
  switchUser(first);
  refreshOperations();
  refreshIam();
  setInterval(refreshOperations, 1000);
  setInterval(refreshIam, 1000);
}

start();
