/* Follow a jobuild's log: the tail first, earlier parts on demand, new bytes as they arrive.
 *
 * Everything comes from the raw log with HTTP Range requests (no whole-file read, whatever its size).
 * Text goes into the page only through text nodes (never innerHTML), so nothing in a log can become
 * markup. Portage's ANSI colours (einfo green, ewarn yellow, eerror red) become CSS classes.
 * Offsets are bytes; every piece shown starts at a line start, so no line, UTF-8 character or colour
 * sequence is ever cut in two. The bridge's phase headers (">>> Running src_test") are marked, and
 * "Jump to" loads the log from where a phase began (the master found the offsets: data-phases) and
 * scrolls to it; a #phase-<name> in the address jumps on load (the job page links the failing phase so).
 */
(function () {
  "use strict";
  const TAIL = 256 * 1024, EARLIER = 512 * 1024, POLL_MS = 1000, LONG_LINE = 1024 * 1024;
  const pre = document.getElementById("log");
  if (!pre) return;
  const src = pre.dataset.src;
  const statusEl = document.getElementById("log-status");
  const sizeEl = document.getElementById("log-size");
  const earlierBtn = document.getElementById("log-earlier");
  const earlierNote = document.getElementById("log-earlier-note");
  const follow = document.getElementById("log-follow");
  const jumpBar = document.getElementById("log-jump");
  const phases = JSON.parse(pre.dataset.phases || "[]");  // [{name, offset}], in order
  const HEADER = /^>>> Running (pkg_setup|src_unpack|src_compile|src_test)$/;
  let start = 0;      // first byte shown (a line start)
  let end = 0;        // byte after the last line shown
  let size = 0;       // the log's length, as last heard
  let complete = false;
  let busy = false;

  const NL = 10;
  const decoder = () => new TextDecoder("utf-8", { fatal: false });

  // -- rendering ----------------------------------------------------------------------------------
  const LINE_KIND = { "32": "einfo", "33": "ewarn", "31": "eerror", "36": "ehilite" };

  function sgr(state, params) {
    const codes = params === "" ? [0] : params.split(";").map((c) => parseInt(c, 10) || 0);
    for (const c of codes) {
      if (c === 0) { state.fg = null; state.bold = false; }
      else if (c === 1) state.bold = true;
      else if (c === 22) state.bold = false;
      else if ((c >= 30 && c <= 37) || (c >= 90 && c <= 97)) state.fg = c;
      else if (c === 39) state.fg = null;
    }
  }

  // one line of text -> a span holding text nodes and coloured spans
  function renderLine(text, state) {
    const cr = text.lastIndexOf("\r", text.length - 2);
    if (cr >= 0) text = text.slice(cr + 1);  // a terminal shows what came after the last carriage return
    if (text.endsWith("\r")) text = text.slice(0, -1);
    const line = document.createElement("span");
    line.className = "line";
    const m = /^ \x1b\[(3[1236]);01m\*/.exec(text);
    if (m) line.classList.add("l-" + LINE_KIND[m[1]]);
    const re = /\x1b\[([0-9;?]*)([A-Za-z])/g;
    let last = 0, hit;
    const put = (s) => {
      if (!s) return;
      if (state.fg === null && !state.bold) { line.appendChild(document.createTextNode(s)); return; }
      const span = document.createElement("span");
      if (state.fg !== null) span.className = "ansi-" + state.fg;
      if (state.bold) span.classList.add("ansi-bold");
      span.textContent = s;
      line.appendChild(span);
    };
    while ((hit = re.exec(text)) !== null) {
      put(text.slice(last, hit.index));
      if (hit[2] === "m") sgr(state, hit[1]);
      last = re.lastIndex;
    }
    put(text.slice(last).replace(/\x1b/g, ""));
    const header = HEADER.exec(line.textContent);
    if (header) {
      line.classList.add("phase");
      line.dataset.phase = header[1];
    }
    line.appendChild(document.createTextNode("\n"));
    return line;
  }

  function render(bytes, withPartialLast) {
    const text = decoder().decode(bytes);
    const lines = text.split("\n");
    if (lines.length && lines[lines.length - 1] === "") lines.pop();
    else if (!withPartialLast) lines.pop();
    const frag = document.createDocumentFragment();
    const state = { fg: null, bold: false };
    for (const l of lines) frag.appendChild(renderLine(l, state));
    return frag;
  }

  // -- fetching -----------------------------------------------------------------------------------
  async function get(range) {
    const resp = await fetch(src, { headers: range ? { Range: range } : {}, cache: "no-store",
                                    credentials: "same-origin" });
    complete = resp.headers.get("X-Log-Complete") === "1";
    const total = resp.headers.get("Content-Range");
    size = parseInt(resp.headers.get("X-Log-Size") || "0", 10);
    if (total) { const t = /\/(\d+)$/.exec(total); if (t) size = Math.max(size, parseInt(t[1], 10)); }
    if (resp.status === 416) return { first: size, bytes: new Uint8Array(0) };
    if (!resp.ok) throw new Error("HTTP " + resp.status);
    const bytes = new Uint8Array(await resp.arrayBuffer());
    let first = 0;
    if (resp.status === 206 && total) first = parseInt(/bytes (\d+)-/.exec(total)[1], 10);
    size = Math.max(size, first + bytes.length);
    return { first, bytes };
  }

  function nearBottom() {
    return pre.scrollHeight - pre.scrollTop - pre.clientHeight < 40;
  }

  function showStatus() {
    sizeEl.textContent = formatSize(size) + (start > 0 ? " (showing the last " + formatSize(size - start) + ")" : "");
    statusEl.textContent = complete ? "complete" : "following…";
    statusEl.className = complete ? "done" : "live";
    earlierBtn.hidden = start === 0;
  }

  function formatSize(n) {
    if (n < 1024) return n + " bytes";
    if (n < 1024 * 1024) return (n / 1024).toFixed(1) + " KB";
    return (n / 1024 / 1024).toFixed(1) + " MB";
  }

  // the bytes from `first` that make whole lines (all of them once the log is complete)
  function wholeLines(bytes, final) {
    if (final) return bytes.length;
    const nl = bytes.lastIndexOf(NL);
    if (nl < 0) return bytes.length >= LONG_LINE ? bytes.length : 0;
    return nl + 1;
  }

  async function tail() {
    const { first, bytes } = await get("bytes=-" + TAIL);
    let skip = 0;
    if (first > 0) {  // begin at the first whole line
      const nl = bytes.indexOf(NL);
      skip = nl >= 0 && nl + 1 < bytes.length ? nl + 1 : 0;
    }
    start = first + skip;
    const body = bytes.subarray(skip);
    const upto = wholeLines(body, complete && first + bytes.length >= size);
    pre.appendChild(render(body.subarray(0, upto), upto === body.length));
    end = start + upto;
    pre.scrollTop = pre.scrollHeight;
  }

  async function more() {
    if (busy) return;
    busy = true;
    try {
      const stick = follow.checked && nearBottom();
      const { first, bytes } = await get("bytes=" + end + "-");
      if (bytes.length && first === end) {
        const final = complete && end + bytes.length >= size;
        const upto = wholeLines(bytes, final);
        if (upto) {
          pre.appendChild(render(bytes.subarray(0, upto), upto === bytes.length));
          end += upto;
          if (stick || follow.checked) pre.scrollTop = pre.scrollHeight;
        }
      }
      showStatus();
    } finally {
      busy = false;
    }
    if (!complete || end < size) setTimeout(more, POLL_MS);
  }

  async function earlier() {
    if (start === 0 || busy) return;
    busy = true;
    earlierBtn.disabled = true;
    try {
      const from = Math.max(0, start - EARLIER);
      const { first, bytes } = await get("bytes=" + from + "-" + (start - 1));
      let skip = 0;
      if (first > 0) {
        const nl = bytes.indexOf(NL);
        skip = nl >= 0 ? nl + 1 : 0;
      }
      const before = pre.scrollHeight;
      pre.insertBefore(render(bytes.subarray(skip), true), pre.firstChild);
      pre.scrollTop += pre.scrollHeight - before;
      start = first + skip;
      earlierNote.hidden = start === 0;
      earlierNote.textContent = start === 0 ? "" : "Earlier parts load " + formatSize(EARLIER) + " at a time.";
      showStatus();
    } finally {
      busy = false;
      earlierBtn.disabled = false;
    }
  }

  // -- phases ---------------------------------------------------------------------------------------
  function headerOf(name) {
    return pre.querySelector('.line.phase[data-phase="' + name + '"]');
  }

  async function jump(name) {
    const at = phases.find((p) => p.name === name);
    if (!at) return;
    follow.checked = false;  // stay where the phase is, even while new lines arrive
    if (at.offset < start && !busy) {  // not loaded yet: everything from the phase's start on
      busy = true;
      try {
        const { first, bytes } = await get("bytes=" + at.offset + "-" + (start - 1));
        const before = pre.scrollHeight;
        pre.insertBefore(render(bytes, true), pre.firstChild);
        pre.scrollTop += pre.scrollHeight - before;
        start = first;
        showStatus();
      } finally {
        busy = false;
      }
    }
    const line = headerOf(name);
    if (line) {
      pre.querySelectorAll(".line.jumped").forEach((l) => l.classList.remove("jumped"));
      line.classList.add("jumped");
      pre.scrollTop = line.offsetTop - pre.offsetTop;
    }
  }

  if (jumpBar) {
    jumpBar.addEventListener("click", (ev) => {
      const name = ev.target.dataset && ev.target.dataset.phase;
      if (name) { ev.preventDefault(); jump(name); }
    });
  }

  earlierBtn.addEventListener("click", earlier);
  const wanted = /^#phase-([a-z_]+)$/.exec(window.location.hash);
  tail().then(() => { showStatus(); return wanted ? jump(wanted[1]) : null; }).then(() => more()).catch((e) => {
    statusEl.textContent = "cannot read the log: " + e.message;
    statusEl.className = "error";
  });
})();
