// The playground's panes: one poll of /api/conversations/SHOP/CONVERSATION a second, and
// the buttons that post as the buyer and as the seller. No framework, nothing remote.
"use strict";

const shop = document.body.dataset.shop;
const conversation = document.body.dataset.conversation;
const api = `/api/conversations/${encodeURIComponent(shop)}/${encodeURIComponent(conversation)}`;
const $ = (id) => document.getElementById(id);
let latestMail = null;
const shownMails = new Set();

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
  for (const child of children) node.append(child);
  return node;
}

function time(at) {
  return at ? new Date(at).toLocaleTimeString() : "";
}

function renderChat(chat) {
  const list = $("chat");
  list.replaceChildren(
    ...chat.map((m) => {
      const part = m.part ? m.part.split(":").pop() : "";
      const who = m.from === "buyer" ? "Buyer" : `Seller${part !== "" ? ` · part ${Number(part) + 1}` : ""}`;
      return el(
        "li",
        { class: `bubble ${m.from}`, "data-kind": m.kind },
        el("span", { class: "who" }, `${who} · ${time(m.at * 1000)}`),
        el("span", { class: "text" }, m.text || `[${m.kind}]`),
      );
    }),
  );
}

function renderMails(mails) {
  $("mail-hint").hidden = mails.length > 0;
  $("reply-form").hidden = mails.length === 0;
  for (const mail of mails) {
    if (shownMails.has(mail.n)) continue;
    shownMails.add(mail.n);
    const head = el(
      "dl",
      { class: "mail-head" },
      el("dt", {}, "From"), el("dd", {}, mail.from),
      el("dt", {}, "To"), el("dd", {}, mail.to),
      el("dt", {}, "Subject"), el("dd", {}, mail.subject),
      el("dt", {}, "Date"), el("dd", {}, mail.date),
    );
    const frame = el("iframe", {
      sandbox: "",
      src: mail.html,
      title: `Digest ${mail.n}: ${mail.subject}`,
    });
    $("mails").prepend(el("article", { class: "mail", "data-n": String(mail.n) }, head, frame));
  }
  if (mails.length) {
    latestMail = mails[mails.length - 1];
    $("answering").textContent = `Answering the digest of ${latestMail.date}`;
  }
}

function renderUsers(users) {
  const select = $("reply-from");
  const chosen = select.value;
  const emails = users.map((u) => u.email);
  if (select.dataset.users === emails.join(",")) return;
  select.dataset.users = emails.join(",");
  select.replaceChildren(...users.map((u) => el("option", { value: u.email }, `${u.email} (${u.role.replace("_", " ")})`)));
  if (emails.includes(chosen)) select.value = chosen;
}

function renderTimeline(entries, on) {
  $("timeline-hint").textContent = on
    ? (entries.length ? "" : "Nothing yet for this conversation.")
    : "The timeline needs the broker (KAFKA_BOOTSTRAP).";
  $("timeline").replaceChildren(
    ...entries.map((e) =>
      el(
        "li",
        { "data-topic": e.topic },
        el("span", { class: "topic" }, e.topic),
        el("span", { class: "when" }, time(e.at_ms)),
        el("span", { class: "summary" }, e.summary),
      ),
    ),
  );
}

async function poll() {
  try {
    const resp = await fetch(api);
    if (resp.ok) {
      const state = await resp.json();
      renderChat(state.chat);
      renderMails(state.mails);
      renderUsers(state.users);
      renderTimeline(state.timeline, state.timeline_on);
    }
  } finally {
    setTimeout(poll, 1000);
  }
}

async function post(path, body) {
  const resp = await fetch(api + path, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const data = await resp.json();
  if (!resp.ok) throw new Error(data.error || data.detail || resp.statusText);
  return data;
}

async function buyerSends(kind) {
  const text = $("buyer-text").value;
  try {
    await post("/buyer", { kind, text: kind === "text" || kind === "emoji" ? text : "", buyer_name: $("buyer-name").value });
    if (kind === "text" || kind === "emoji") $("buyer-text").value = "";
  } catch (err) {
    $("buyer-text").setCustomValidity(String(err.message));
    $("buyer-text").reportValidity();
    $("buyer-text").setCustomValidity("");
  }
}

$("buyer-form").addEventListener("submit", (event) => {
  event.preventDefault();
  buyerSends("text");
});
for (const button of document.querySelectorAll("#buyer-form button[type=button]")) {
  button.addEventListener("click", () => buyerSends(button.dataset.kind));
}

async function sellerSends(path, body) {
  const verdict = $("verdict");
  verdict.textContent = "Sending… waiting for the bridge's verdict";
  verdict.className = "verdict";
  try {
    const result = await post(path, body);
    verdict.textContent = result.summary;
    verdict.className = `verdict ${result.classification === "reply" ? "ok" : "held"}`;
    return result;
  } catch (err) {
    verdict.textContent = String(err.message);
    verdict.className = "verdict held";
  }
}

$("reply-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  if (!latestMail || !$("reply-text").value.trim()) return;
  const result = await sellerSends("/reply", {
    mail: latestMail.n,
    text: $("reply-text").value,
    style: $("reply-style").value,
    from_address: $("reply-from").value,
  });
  if (result && result.classification === "reply") $("reply-text").value = "";
});
$("out-of-office").addEventListener("click", () => {
  if (latestMail) sellerSends("/out-of-office", { mail: latestMail.n, from_address: $("reply-from").value });
});
$("new-conversation").addEventListener("click", () => {
  const id = "5764606" + String(Math.floor(Math.random() * 1e11)).padStart(11, "0");
  location.search = `?shop=${encodeURIComponent(shop)}&conversation=${id}`;
});

poll();
