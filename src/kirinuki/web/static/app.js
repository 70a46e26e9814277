// kirinuki page: send pictures to /api/cutout one at a time, show and offer the results.
"use strict";

const $ = (sel, el = document) => el.querySelector(sel);
const items = [];
let busy = false;

// -- options -------------------------------------------------------------------------------
function options() {
  return {
    mask: $("#mask").checked,
    background: $("#use-bg").checked ? $("#bg").value : "",
    trim: $("#trim").checked,
  };
}

for (const id of ["#mask", "#use-bg", "#bg", "#trim"]) {
  $(id).addEventListener("change", () => {
    if (id === "#bg") $("#use-bg").checked = true;
    for (const item of items) if (item.state !== "queued") setState(item, "queued");
    pump();
  });
}

// -- adding pictures ---------------------------------------------------------------------------
function addFiles(fileList) {
  for (const file of fileList) {
    const card = $("#card").content.firstElementChild.cloneNode(true);
    const item = { file, card, blob: null, name: null, url: null, state: "queued", points: [] };
    $(".name", card).textContent = file.name || "pasted picture";
    $(".name", card).title = file.name || "";
    $(".before", card).src = URL.createObjectURL(file);
    $(".slider", card).addEventListener("input", (e) => {
      $(".before", card).style.clipPath = `inset(0 ${100 - e.target.value}% 0 0)`;
    });
    const group = `mode-${items.length}`;
    for (const radio of card.querySelectorAll(".mode")) {
      radio.name = group;
      radio.addEventListener("change", () => { card.dataset.mode = radio.value; });
    }
    card.dataset.mode = "off";
    $(".compare", card).addEventListener("click", (e) => fixAt(item, e));
    $(".undo", card).addEventListener("click", () => {
      item.points.pop();
      item.clicked = false;
      setState(item, "queued");
      pump();
    });
    $("#results").append(card);
    items.push(item);
    setState(item, "queued");
  }
  pump();
}

$("#files").addEventListener("change", (e) => { addFiles(e.target.files); e.target.value = ""; });
const drop = $("#drop");
drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => { e.preventDefault(); drop.classList.remove("over"); addFiles(e.dataTransfer.files); });
window.addEventListener("dragover", (e) => e.preventDefault());
window.addEventListener("drop", (e) => e.preventDefault());
document.addEventListener("paste", (e) => {
  const files = [...(e.clipboardData?.files || [])].filter((f) => f.type.startsWith("image/"));
  if (files.length) addFiles(files.map((f, i) => f.name ? f : new File([f], `pasted-${i + 1}.png`, { type: f.type })));
});

// -- fixing whole regions: a click keeps or drops the region under it ---------------------------
function fixAt(item, e) {
  const mode = item.card.dataset.mode;
  if ((mode !== "keep" && mode !== "drop") || item.state !== "done") return;
  if ($("#trim").checked) {  // a trimmed cutout no longer lines up with the picture's pixels
    $(".state", item.card).textContent = "turn Trim off to fix regions";
    return;
  }
  const img = $(".after", item.card);
  const box = img.getBoundingClientRect();
  const natural = $(".before", item.card);  // the original picture: its pixels are the coordinates
  const w = natural.naturalWidth, h = natural.naturalHeight;
  if (!w || !h || !box.width || !box.height) return;
  const x = Math.min(w - 1, Math.max(0, Math.floor(((e.clientX - box.left) / box.width) * w)));
  const y = Math.min(h - 1, Math.max(0, Math.floor(((e.clientY - box.top) / box.height) * h)));
  item.points.push({ mode, x, y });
  item.clicked = true;  // the next answer is about this click
  setState(item, "queued");
  pump();
}

// The clicks in the order they were made: the server applies them in that order, so the last
// click on a region decides it, as Undo implies.
function editsField(item) {
  return item.points.map((p) => `${p.mode}:${p.x},${p.y}`).join(";");
}

// -- state ---------------------------------------------------------------------------------------
function setState(item, state, text) {
  item.state = state;
  item.card.dataset.state = state;
  const labels = { queued: "waiting", uploading: "uploading", working: "cutting out", done: "done", error: "rejected" };
  $(".state", item.card).textContent = text || labels[state];
  if (state !== "error") $(".error", item.card).textContent = "";
  if (state === "queued") $(".bar", item.card).style.width = "0";
  $(".undo", item.card).disabled = !item.points.length || state !== "done";
  summary();
}

function summary() {
  const done = items.filter((i) => i.state === "done").length;
  const failed = items.filter((i) => i.state === "error").length;
  const left = items.length - done - failed;
  $("#summary").textContent = items.length
    ? `${done} of ${items.length} done` + (failed ? `, ${failed} rejected` : "") + (left ? ", working…" : "")
    : "";
  $("#zip").disabled = done === 0 || left > 0;
}

// -- talking to the server -----------------------------------------------------------------------
async function pump() {
  if (busy) return;
  busy = true;
  let item;
  while ((item = items.find((i) => i.state === "queued"))) await send(item);
  busy = false;
}

function send(item) {
  return new Promise((resolve) => {
    const form = new FormData();
    const opts = options();
    form.append("file", item.file, item.file.name || "picture.png");
    form.append("mask", opts.mask);
    form.append("trim", opts.trim);
    if (opts.background) form.append("background", opts.background);
    form.append("edits", editsField(item));
    const xhr = new XMLHttpRequest();
    xhr.open("POST", "/api/cutout");
    xhr.responseType = "blob";
    xhr.upload.onprogress = (e) => {
      if (!e.lengthComputable) return;
      const pct = Math.round((100 * e.loaded) / e.total);
      $(".bar", item.card).style.width = pct + "%";
      setState(item, "uploading", `uploading ${pct}%`);
    };
    xhr.upload.onload = () => setState(item, "working");
    xhr.onload = async () => {
      if (xhr.status === 200) {
        if (item.url) URL.revokeObjectURL(item.url);
        item.blob = xhr.response;
        item.url = URL.createObjectURL(item.blob);
        item.name = fileName(xhr.getResponseHeader("Content-Disposition")) || "cutout.png";
        $(".after", item.card).src = item.url;
        const link = $(".download", item.card);
        link.href = item.url;
        link.download = item.name;
        item.clicked = false;
        setState(item, "done");
        resolve();
        return;
      }
      let message = `the server answered ${xhr.status}`;
      try { message = JSON.parse(await xhr.response.text()).error || message; } catch (_) { /* not JSON */ }
      if (xhr.status === 503) {
        const wait = Number(xhr.getResponseHeader("Retry-After") || 2);
        setState(item, "queued", `server busy, retrying in ${wait} s`);
        setTimeout(resolve, wait * 1000);
        return;
      }
      fail(item, message);
      resolve();
    };
    xhr.onerror = () => { fail(item, "could not reach the server"); resolve(); };
    setState(item, "uploading");
    xhr.send(form);
  });
}

function fail(item, message) {
  if (item.clicked && item.blob) {
    // The server refused a click (an animation, too many points): take that click back and
    // keep the last good cutout, its download and its Undo.
    item.points.pop();
    item.clicked = false;
    setState(item, "done", "click not applied");
    $(".error", item.card).textContent = `${item.file.name || "This picture"}: ${message}`;
    return;
  }
  $(".error", item.card).textContent = `${item.file.name || "This picture"}: ${message}`;
  setState(item, "error");
}

function fileName(disposition) {
  if (!disposition) return null;
  const utf = /filename\*=UTF-8''([^;]+)/i.exec(disposition);
  if (utf) return decodeURIComponent(utf[1]);
  const plain = /filename="([^"]+)"/i.exec(disposition);
  return plain ? plain[1] : null;
}

// -- download all: a stored (uncompressed) zip, written here ------------------------------------
const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

function crc32(bytes) {
  let c = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

async function zipBlob(entries) {
  const parts = [], central = [];
  let offset = 0;
  const enc = new TextEncoder();
  for (const { name, blob } of entries) {
    const data = new Uint8Array(await blob.arrayBuffer());
    const fname = enc.encode(name);
    const crc = crc32(data);
    const local = new DataView(new ArrayBuffer(30));
    local.setUint32(0, 0x04034b50, true); local.setUint16(4, 20, true); local.setUint16(6, 0x0800, true);
    local.setUint16(8, 0, true); local.setUint16(10, 0, true); local.setUint16(12, 0x21, true);
    local.setUint32(14, crc, true); local.setUint32(18, data.length, true); local.setUint32(22, data.length, true);
    local.setUint16(26, fname.length, true); local.setUint16(28, 0, true);
    parts.push(local, fname, data);
    const dir = new DataView(new ArrayBuffer(46));
    dir.setUint32(0, 0x02014b50, true); dir.setUint16(4, 20, true); dir.setUint16(6, 20, true);
    dir.setUint16(8, 0x0800, true); dir.setUint16(10, 0, true); dir.setUint16(12, 0, true); dir.setUint16(14, 0x21, true);
    dir.setUint32(16, crc, true); dir.setUint32(20, data.length, true); dir.setUint32(24, data.length, true);
    dir.setUint16(28, fname.length, true); dir.setUint32(42, offset, true);
    central.push(dir, fname);
    offset += 30 + fname.length + data.length;
  }
  const size = central.reduce((n, p) => n + p.byteLength, 0);
  const end = new DataView(new ArrayBuffer(22));
  end.setUint32(0, 0x06054b50, true); end.setUint16(8, entries.length, true); end.setUint16(10, entries.length, true);
  end.setUint32(12, size, true); end.setUint32(16, offset, true);
  return new Blob([...parts, ...central, end], { type: "application/zip" });
}

$("#zip").addEventListener("click", async () => {
  const used = new Map();
  const entries = items.filter((i) => i.state === "done").map((i) => {
    let name = i.name;
    const n = (used.get(name) || 0) + 1;
    used.set(name, n);
    if (n > 1) name = name.replace(/(\.[^.]*)?$/, `-${n}$1`);
    return { name, blob: i.blob };
  });
  const link = document.createElement("a");
  link.href = URL.createObjectURL(await zipBlob(entries));
  link.download = "kirinuki-cutouts.zip";
  document.body.append(link);
  link.click();
  link.remove();
});
