// The Outdial dashboard: a client of the /v1.0 API, rendered with Preact and htm (no build step),
// charts with uPlot. Every file it loads comes from this server.
(function () {
  "use strict";
  const { h, render } = window.preact;
  const { useState, useEffect, useRef, useCallback, useErrorBoundary } = window.preactHooks;
  const html = window.htm.bind(h);

  // ---------------------------------------------------------------- the API

  const session = {
    token: sessionStorage.getItem("outdial.token"),
    username: sessionStorage.getItem("outdial.username") || "",
  };
  let showLogin = () => {};

  class ApiError extends Error {
    constructor(status, reason, message) {
      super(message);
      this.status = status;
      this.reason = reason;
    }
  }

  // The API's own message from its envelope, {"error": {"status", "reason", "message"}}.
  async function errorOf(response) {
    let message = `${response.status} ${response.statusText || "error"}`;
    let reason = "";
    try {
      const body = await response.json();
      if (body && body.error) {
        message = body.error.message || message;
        reason = body.error.reason || "";
      }
    } catch (_) { /* not JSON: keep the status line */ }
    if (response.status === 401 && session.token) logout(`Please log in again: ${message}`);
    return new ApiError(response.status, reason, message);
  }

  function urlOf(path, query) {
    const url = new URL(path, window.location.origin);
    for (const [key, value] of Object.entries(query || {})) {
      if (value !== undefined && value !== null && value !== "") url.searchParams.set(key, value);
    }
    return url;
  }

  function authHeaders() {
    return session.token ? { Authorization: `Bearer ${session.token}` } : {};
  }

  const CALL_TIMEOUT_MS = 60000;

  async function api(method, path, { body, query, raw } = {}) {
    const headers = authHeaders();
    let payload;
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      payload = JSON.stringify(body);
    }
    let response;
    try {
      // Bounded, but not a download: an export streams for as long as the list takes.
      const signal = raw ? undefined : AbortSignal.timeout(CALL_TIMEOUT_MS);
      response = await fetch(urlOf(path, query), { method, headers, body: payload, cache: "no-store", signal });
    } catch (error) {
      if (error.name === "TimeoutError") {
        throw new ApiError(0, "TIMEOUT", `The server did not answer within ${CALL_TIMEOUT_MS / 1000} s.`);
      }
      throw new ApiError(0, "NETWORK", `The server could not be reached (${error.message}).`);
    }
    if (!response.ok) throw await errorOf(response);
    return raw ? response : response.json();
  }

  function login(username, token) {
    session.token = token;
    session.username = username;
    sessionStorage.setItem("outdial.token", token);
    sessionStorage.setItem("outdial.username", username);
  }

  function logout(message) {
    session.token = null;
    sessionStorage.removeItem("outdial.token");
    sessionStorage.removeItem("outdial.username");
    stream.stop();
    showLogin(message || "");
  }

  // A file the API streams (an export, a report) saved through the browser, with the token in a
  // header rather than in a link.
  async function download(path, query, filename) {
    const response = await api("GET", path, { query, raw: true });
    const url = URL.createObjectURL(await response.blob());
    const link = document.createElement("a");
    link.href = url;
    link.download = filename;
    document.body.appendChild(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  }

  function uuid4() {
    const b = crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    const hex = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
    return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
  }

  const NIL = "00000000-0000-0000-0000-000000000000";
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  // ---------------------------------------------------------------- the event stream

  // The events the live view follows; the stream sends no others.
  const STREAM_TYPES = "campaign_updated,campaigncall_created,campaigncall_updated";

  // The newest event id the API shows, found with GET /v1.0/events?after=N (oldest first, one
  // at a time) in a few dozen look-ups: a stream opened without an id would replay every event
  // kept (days of them), and the live view only wants what happens from now on.
  async function newestEventId() {
    const after = async (id) => {
      const page = await api("GET", "/v1.0/events", { query: { after: id, page_size: 1 } });
      return page.result.length ? page.result[0].id : null;
    };
    let found = await after(0); // an event with this id exists
    if (found === null) return 0;
    let step = 1024;
    let above;
    for (;;) { // no event above `above`
      const next = await after(found + step);
      if (next === null) { above = found + step; break; }
      found = next;
      step *= 8;
    }
    while (found < above) {
      const middle = Math.floor((found + above) / 2);
      const next = await after(middle);
      if (next === null) above = middle;
      else found = next;
    }
    return found;
  }

  // GET /v1.0/events/stream read with fetch(), so the token goes in a header (EventSource cannot
  // send one); a dropped connection resumes with Last-Event-ID. A server without the stream
  // answers 404 and the views poll instead.
  const stream = {
    state: "idle", // idle | connecting | open | unavailable
    lastId: null,
    listeners: new Set(),
    stateListeners: new Set(),
    controller: null,
    generation: 0, // each start() is one; an older loop sees it changed and ends

    subscribe(listener) {
      this.listeners.add(listener);
      if (this.listeners.size === 1) this.start();
      return () => {
        this.listeners.delete(listener);
        if (!this.listeners.size) this.stop();
      };
    },
    onState(listener) {
      this.stateListeners.add(listener);
      listener(this.state);
      return () => this.stateListeners.delete(listener);
    },
    setState(state) {
      this.state = state;
      this.stateListeners.forEach((listener) => listener(state));
    },
    // Nobody is watching: close the connection; the next view starts from the newest event.
    stop() {
      this.generation += 1;
      if (this.controller) this.controller.abort();
      this.lastId = null;
      if (this.state !== "unavailable") this.setState("idle");
    },
    async start() {
      if (this.state === "unavailable" || !session.token) return;
      const mine = ++this.generation;
      const current = () => mine === this.generation && session.token;
      let backoff = 500;
      while (current()) {
        this.controller = new AbortController();
        this.setState("connecting");
        try {
          if (this.lastId === null) this.lastId = String(await newestEventId());
          if (!current()) return;
          const headers = { ...authHeaders(), Accept: "text/event-stream", "Last-Event-ID": this.lastId };
          const response = await fetch(urlOf("/v1.0/events/stream", { type: STREAM_TYPES }), {
            headers, signal: this.controller.signal, cache: "no-store",
          });
          if (!response.ok) throw await errorOf(response);
          this.setState("open");
          backoff = 500;
          await this.read(response.body);
        } catch (error) {
          if (error.status === 404) { // no events API on this server: the views poll
            this.setState("unavailable");
            return;
          }
        }
        if (!current()) return;
        this.setState("connecting");
        await sleep(backoff);
        backoff = Math.min(backoff * 2, 10000);
      }
    },
    async read(body) {
      const reader = body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        buffer += value.replace(/\r\n?/g, "\n");
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          this.dispatch(buffer.slice(0, end));
          buffer = buffer.slice(end + 2);
        }
      }
    },
    dispatch(block) {
      let id = null;
      const data = [];
      for (const line of block.split("\n")) {
        if (line === "" || line.startsWith(":")) continue; // a heartbeat
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
        if (field === "id") id = value;
        else if (field === "data") data.push(value);
      }
      if (id !== null && id !== "") this.lastId = id;
      if (!data.length) return;
      let event;
      try {
        event = JSON.parse(data.join("\n"));
      } catch (_) {
        return;
      }
      this.listeners.forEach((listener) => listener(event));
    },
  };

  // ---------------------------------------------------------------- small pieces

  function useRoute() {
    const [hash, setHash] = useState(window.location.hash || "#/outdials");
    useEffect(() => {
      const changed = () => setHash(window.location.hash || "#/outdials");
      window.addEventListener("hashchange", changed);
      return () => window.removeEventListener("hashchange", changed);
    }, []);
    return hash.replace(/^#\/?/, "").split("/").filter(Boolean);
  }

  // Load something from the API; reload() loads it again. Errors are kept to be shown.
  function useLoad(load, deps) {
    const [state, setState] = useState({ data: null, error: null, loading: true });
    const generation = useRef(0);
    const reload = useCallback(async () => {
      const mine = ++generation.current;
      setState((s) => ({ ...s, loading: true }));
      try {
        const data = await load();
        if (mine === generation.current) setState({ data, error: null, loading: false });
      } catch (error) {
        if (mine === generation.current) setState((s) => ({ ...s, error, loading: false }));
      }
    }, deps);
    useEffect(() => { reload(); }, [reload]);
    return { ...state, reload };
  }

  // A list the API pages with next_page_token: a stack of tokens to go back.
  function usePaged(path, query, deps) {
    const [tokens, setTokens] = useState([""]);
    const token = tokens[tokens.length - 1];
    useEffect(() => setTokens([""]), deps);
    const loaded = useLoad(() => api("GET", path, { query: { ...query, page_token: token } }),
      [...deps, token]);
    const page = loaded.data || { result: [], next_page_token: "" };
    const size = Number((query && query.page_size) || 100);
    return {
      ...loaded,
      rows: page.result,
      hasNext: page.result.length >= size && page.next_page_token !== "",
      hasPrevious: tokens.length > 1,
      next: () => setTokens([...tokens, page.next_page_token]),
      previous: () => setTokens(tokens.slice(0, -1)),
      pageNumber: tokens.length,
    };
  }

  function Pager({ paged, label }) {
    return html`<nav class="pager" aria-label=${`${label} pages`}>
      <button type="button" class="secondary" disabled=${!paged.hasPrevious} onClick=${paged.previous}>Previous</button>
      <span class="muted">page ${paged.pageNumber}</span>
      <button type="button" class="secondary" disabled=${!paged.hasNext} onClick=${paged.next}>Next</button>
    </nav>`;
  }

  function ErrorText({ error }) {
    if (!error) return null;
    return html`<p class="error" role="alert">${error.message || String(error)}</p>`;
  }

  function Status({ value }) {
    return html`<span class=${`status ${value}`}>${value}</span>`;
  }

  function Figure({ name, value, id }) {
    return html`<div class="figure"><div class="value" id=${id}>${value ?? "–"}</div><div class="name">${name}</div></div>`;
  }

  // Run an action from a button or a form; its error is shown next to it, its result returned.
  function useAction() {
    const [state, setState] = useState({ busy: false, error: null });
    const run = useCallback(async (action) => {
      setState({ busy: true, error: null });
      try {
        const result = await action();
        setState({ busy: false, error: null });
        return result;
      } catch (error) {
        setState({ busy: false, error });
        return undefined;
      }
    }, []);
    return { ...state, run };
  }

  function formValues(form) {
    return Object.fromEntries(new FormData(form).entries());
  }

  function integer(value, fallback) {
    if (value === undefined || value === "") return fallback;
    const number = Number(value);
    return Number.isFinite(number) ? number : value; // the API names a bad one
  }

  function shortTime(value) {
    if (!value || value.startsWith("9999")) return "";
    return value.replace("T", " ").replace(/\.\d+Z?$/, "");
  }

  function destinationText(destination) {
    return destination ? destination.target : "";
  }

  // The waiting reasons of a stats answer, however the server names the map (only once the
  // retry strategy is in; absent before).
  function waitingReasons(stats) {
    if (!stats) return null;
    for (const key of ["waiting_reasons", "waiting_reason", "by_waiting_reason"]) {
      const value = stats[key];
      if (value && typeof value === "object" && !Array.isArray(value)) return value;
    }
    return null;
  }

  function Reasons({ stats }) {
    const present = Object.entries(waitingReasons(stats) || {}).filter(([, count]) => count > 0);
    if (!present.length) return null;
    return html`<span class="muted">${present.map(([reason, count]) => `${reason}: ${count}`).join(", ")}</span>`;
  }

  // ---------------------------------------------------------------- login

  function Login({ message, onDone }) {
    const action = useAction();
    const submit = async (event) => {
      event.preventDefault();
      const { username, password } = formValues(event.target);
      const answer = await action.run(() => api("POST", "/auth/login", { body: { username, password } }));
      if (answer) {
        login(answer.username, answer.token);
        onDone();
      }
    };
    return html`<main class="login">
      <h1>Outdial</h1>
      <form class="card" onSubmit=${submit} aria-label="Log in">
        ${message && html`<p class="notice" role="status">${message}</p>`}
        <label>Username<input name="username" autocomplete="username" required /></label>
        <label>Password<input name="password" type="password" autocomplete="current-password" required /></label>
        <${ErrorText} error=${action.error} />
        <button type="submit" disabled=${action.busy}>Log in</button>
        <p class="muted">The API is described at <a href="/docs">/docs</a>.</p>
      </form>
    </main>`;
  }

  // ---------------------------------------------------------------- outdials

  function Outdials() {
    const paged = usePaged("/v1.0/outdials", { page_size: 25 }, []);
    const [stats, setStats] = useState({});
    useEffect(() => {
      let live = true;
      for (const outdial of paged.rows) {
        api("GET", `/v1.0/outdials/${outdial.id}/stats`)
          .then((s) => live && setStats((all) => ({ ...all, [outdial.id]: s })))
          .catch(() => {});
      }
      return () => { live = false; };
    }, [paged.rows]);
    const create = useAction();
    const submit = async (event) => {
      event.preventDefault();
      const form = event.target;
      const { name, detail } = formValues(form);
      const made = await create.run(() => api("POST", "/v1.0/outdials", { body: { name, detail } }));
      if (made) window.location.hash = `#/outdials/${made.id}`;
    };
    return html`<div>
      <h1>Outdials</h1>
      <form class="card" onSubmit=${submit} aria-label="New outdial">
        <h2>New outdial</h2>
        <div class="row">
          <label>Name<input name="name" id="outdial-name" required /></label>
          <label>Detail<input name="detail" /></label>
          <button type="submit" disabled=${create.busy}>Create outdial</button>
        </div>
        <${ErrorText} error=${create.error} />
      </form>
      <${ErrorText} error=${paged.error} />
      <div class="table-wrap"><table id="outdials">
        <thead><tr><th>Name</th><th class="num">Targets</th><th class="num">Idle</th>
          <th class="num">In progress</th><th class="num">Done</th><th class="num">Answered</th>
          <th class="num">Exhausted</th><th class="hide-narrow">Waiting</th></tr></thead>
        <tbody>${paged.rows.map((outdial) => {
          const s = stats[outdial.id] || {};
          return html`<tr key=${outdial.id}>
            <td><a href=${`#/outdials/${outdial.id}`}>${outdial.name || "(no name)"}</a></td>
            <td class="num">${s.targets}</td><td class="num">${s.idle}</td><td class="num">${s.progressing}</td>
            <td class="num">${s.done}</td><td class="num">${s.answered}</td><td class="num">${s.exhausted}</td>
            <td class="hide-narrow"><${Reasons} stats=${s} /></td></tr>`;
        })}</tbody>
      </table></div>
      ${!paged.loading && !paged.rows.length && html`<p class="muted">No outdial yet: create one above.</p>`}
      <${Pager} paged=${paged} label="Outdials" />
    </div>`;
  }

  function StatsFigures({ stats }) {
    if (!stats) return null;
    return html`<div class="figures" id="stats">
      <${Figure} name="targets" value=${stats.targets} id="stat-targets" />
      <${Figure} name="idle" value=${stats.idle} id="stat-idle" />
      <${Figure} name="in progress" value=${stats.progressing} id="stat-progressing" />
      <${Figure} name="done" value=${stats.done} id="stat-done" />
      <${Figure} name="answered" value=${stats.answered} id="stat-answered" />
      <${Figure} name="exhausted" value=${stats.exhausted} id="stat-exhausted" />
      <${Figure} name="attempts" value=${stats.attempts} id="stat-attempts" />
      <${Figure} name="dialable now" value=${stats.dialable_now} />
      <${Figure} name="waiting to retry" value=${stats.waiting_retry} />
      ${Object.entries(waitingReasons(stats) || {}).map(([reason, count]) =>
        html`<${Figure} key=${reason} name=${`waiting: ${reason}`} value=${count} />`)}
    </div>`;
  }

  const FORMATS = { csv: "text/csv", ndjson: "application/x-ndjson", jsonl: "application/x-ndjson", json: "application/json" };

  function contentTypeOf(file) {
    const extension = (file.name.split(".").pop() || "").toLowerCase();
    return FORMATS[extension] || file.type || "text/csv";
  }

  function size(bytes) {
    if (bytes < 1024) return `${bytes} bytes`;
    if (bytes < 1048576) return `${(bytes / 1024).toFixed(1)} KB`;
    return `${(bytes / 1048576).toFixed(1)} MB`;
  }

  // The upload goes through XMLHttpRequest, the one browser API that reports how much of a
  // request body has been sent; the job's own counts come from GET …/imports/{id} meanwhile.
  function Import({ outdialId, onDone }) {
    const [progress, setProgress] = useState(null);
    const [job, setJob] = useState(null);
    const [error, setError] = useState(null);
    const submit = async (event) => {
      event.preventDefault();
      const form = event.target;
      const file = form.elements.file.files[0];
      if (!file) return;
      const options = formValues(form);
      const id = uuid4();
      setError(null);
      setJob(null);
      setProgress({ sent: 0, total: file.size, phase: "Uploading" });
      const query = { id, default_region: options.default_region, dedupe: options.dedupe ? "true" : "" };
      let finished = false;
      const follow = (async () => {
        while (!finished) {
          await sleep(500);
          if (finished) return;
          try {
            const running = await api("GET", `/v1.0/outdials/${outdialId}/imports/${id}`);
            if (!finished) setJob(running);
          } catch (_) { /* not started yet */ }
        }
      })();
      try {
        const answer = await new Promise((resolve, reject) => {
          const request = new XMLHttpRequest();
          request.open("POST", urlOf(`/v1.0/outdials/${outdialId}/imports`, query));
          request.setRequestHeader("Authorization", `Bearer ${session.token}`);
          request.setRequestHeader("Content-Type", contentTypeOf(file));
          request.upload.onprogress = (e) => setProgress({
            sent: e.loaded, total: e.total || file.size, phase: e.loaded >= (e.total || file.size) ? "Checking rows" : "Uploading",
          });
          request.onload = () => {
            let body = null;
            try { body = JSON.parse(request.responseText); } catch (_) { /* keep null */ }
            if (request.status >= 200 && request.status < 300) resolve(body);
            else reject(new ApiError(request.status, body && body.error ? body.error.reason : "",
              body && body.error ? body.error.message : `${request.status} ${request.statusText}`));
          };
          request.onerror = () => reject(new ApiError(0, "NETWORK", "The upload was interrupted: the server could not be reached."));
          request.send(file);
        });
        finished = true;
        setJob(answer);
        setProgress({ sent: file.size, total: file.size, phase: "Done" });
        form.reset();
        onDone();
      } catch (failure) {
        finished = true;
        setError(failure);
        setProgress(null);
        if (failure.status === 401) logout(`Please log in again: ${failure.message}`);
      }
      await follow;
    };
    const percent = progress && progress.total ? Math.round((100 * progress.sent) / progress.total) : 0;
    return html`<form class="card" onSubmit=${submit} aria-label="Import a file">
      <h2>Import a list</h2>
      <div class="row">
        <label>File (CSV, NDJSON or JSON)<input type="file" name="file" id="import-file" required accept=".csv,.ndjson,.jsonl,.json,text/csv,application/json" /></label>
        <label>Region of national numbers<input name="default_region" placeholder="e.g. US" size="6" /></label>
        <label class="inline"><input type="checkbox" name="dedupe" value="true" />Skip duplicates</label>
        <button type="submit" disabled=${progress && progress.phase !== "Done"}>Upload</button>
      </div>
      ${progress && html`<div id="import-progress">
        <label>${progress.phase}: ${percent}% (${size(progress.sent)} of ${size(progress.total)})
          <progress max="100" value=${percent}>${percent}%</progress></label>
      </div>`}
      <${ErrorText} error=${error} />
      ${job && html`<${ImportResult} job=${job} outdialId=${outdialId} />`}
    </form>`;
  }

  function ImportResult({ job, outdialId }) {
    const report = useAction();
    return html`<div id="import-result" aria-live="polite">
      <p>Import <${Status} value=${job.status} />: <span id="import-counts">${`${job.rows_total} rows, ${job.rows_imported} imported, ${job.rows_rejected} rejected, ${job.rows_duplicate} duplicate`}</span></p>
      ${job.errors && job.errors.length > 0 && html`<div>
        <h2>Bad rows</h2>
        <div class="table-wrap"><table id="import-errors">
          <thead><tr><th class="num">Row</th><th>Field</th><th>Why</th></tr></thead>
          <tbody>${job.errors.map((e, i) => html`<tr key=${i}><td class="num">${e.row}</td><td>${e.field}</td><td>${e.message}</td></tr>`)}</tbody>
        </table></div>
        ${job.status !== "running" && html`<button type="button" class="secondary" onClick=${() => report.run(() =>
          download(`/v1.0/outdials/${outdialId}/imports/${job.id}/errors`, {}, `import-${job.id}-errors.csv`))}>Download every bad row (CSV)</button>`}
        <${ErrorText} error=${report.error} />
      </div>`}
    </div>`;
  }

  // The type of an address as the import infers it from a bare value.
  function addressOf(value) {
    const target = value.trim();
    if (!target) return null;
    const type = /^sips?:/i.test(target) ? "sip" : target.includes("@") && !target.startsWith("+") ? "email" : "tel";
    return { type, target };
  }

  function AddTarget({ outdialId, onDone }) {
    const add = useAction();
    const submit = async (event) => {
      event.preventDefault();
      const v = formValues(event.target);
      const body = { name: v.name, destination_0: addressOf(v.destination_0), destination_1: addressOf(v.destination_1) };
      if (await add.run(() => api("POST", `/v1.0/outdials/${outdialId}/targets`, { body }))) {
        event.target.reset();
        onDone();
      }
    };
    return html`<form onSubmit=${submit} aria-label="Add a target">
      <div class="row">
        <label>Name<input name="name" /></label>
        <label>Destination 0<input name="destination_0" required placeholder="+15559876543, sip:…, a@b.example" /></label>
        <label>Destination 1<input name="destination_1" /></label>
        <button type="submit" class="secondary" disabled=${add.busy}>Add target</button>
      </div>
      <${ErrorText} error=${add.error} />
    </form>`;
  }

  function Outdial({ id }) {
    const outdial = useLoad(() => api("GET", `/v1.0/outdials/${id}`), [id]);
    const stats = useLoad(() => api("GET", `/v1.0/outdials/${id}/stats`), [id]);
    const [status, setStatus] = useState("");
    const [pageSize, setPageSize] = useState(25);
    const [version, setVersion] = useState(0);
    const targets = usePaged(`/v1.0/outdials/${id}/targets`, { page_size: pageSize, status }, [id, status, pageSize, version]);
    const imports = useLoad(() => api("GET", `/v1.0/outdials/${id}/imports`, { query: { page_size: 5 } }), [id, version]);
    const exporting = useAction();
    const refresh = () => { stats.reload(); setVersion((v) => v + 1); };
    const o = outdial.data;
    return html`<div>
      <p><a href="#/outdials">← Outdials</a></p>
      <${ErrorText} error=${outdial.error} />
      ${o && html`<h1>${o.name || "(no name)"} ${o.tm_delete && !o.tm_delete.startsWith("9999") ? html`<${Status} value="deleted" />` : ""}</h1>
        ${o.detail && html`<p class="muted">${o.detail}</p>`}
        ${o.campaign_id !== NIL && html`<p>Dialed by <a href=${`#/campaigns/${o.campaign_id}`}>its campaign</a>.</p>`}`}
      <section class="card" aria-label="Statistics">
        <div class="row"><h2>Statistics</h2><button type="button" class="secondary" onClick=${refresh}>Refresh</button></div>
        <${ErrorText} error=${stats.error} />
        <${StatsFigures} stats=${stats.data} />
      </section>
      <${Import} outdialId=${id} onDone=${refresh} />
      <section class="card" aria-label="Targets">
        <h2>Targets</h2>
        <${AddTarget} outdialId=${id} onDone=${refresh} />
        <div class="row">
          <label>Status<select id="target-status" value=${status} onChange=${(e) => setStatus(e.target.value)}>
            <option value="">any</option><option value="idle">idle</option>
            <option value="progressing">progressing</option><option value="done">done</option></select></label>
          <label>Per page<select value=${pageSize} onChange=${(e) => setPageSize(Number(e.target.value))}>
            ${[10, 25, 50, 100].map((n) => html`<option value=${n}>${n}</option>`)}</select></label>
          <button type="button" class="secondary" onClick=${() => exporting.run(() => download(`/v1.0/outdials/${id}/targets/export`, { format: "csv" }, `outdial-${id}.csv`))}>Export CSV</button>
          <button type="button" class="secondary" onClick=${() => exporting.run(() => download(`/v1.0/outdials/${id}/targets/export`, { format: "ndjson" }, `outdial-${id}.ndjson`))}>Export NDJSON</button>
        </div>
        <${ErrorText} error=${exporting.error} />
        <${ErrorText} error=${targets.error} />
        <div class="table-wrap"><table id="targets">
          <thead><tr><th>Name</th><th>Status</th><th>Destination 0</th><th class="hide-narrow">Destination 1</th>
            <th class="num">Tries</th><th class="hide-narrow">Waiting</th><th class="hide-narrow">Created</th></tr></thead>
          <tbody>${targets.rows.map((t) => html`<tr key=${t.id}>
            <td>${t.name}</td><td><${Status} value=${t.status} /></td>
            <td>${destinationText(t.destination_0)}</td><td class="hide-narrow">${destinationText(t.destination_1)}</td>
            <td class="num">${[0, 1, 2, 3, 4].reduce((n, i) => n + (t[`try_count_${i}`] || 0), 0)}</td>
            <td class="hide-narrow">${t.waiting_reason || ""}${t.next_attempt_at && t.status === "idle" ? ` ${shortTime(t.next_attempt_at)}` : ""}</td>
            <td class="hide-narrow">${shortTime(t.tm_create)}</td></tr>`)}</tbody>
        </table></div>
        ${!targets.loading && !targets.rows.length && html`<p class="muted">No target${status ? ` ${status}` : ""}.</p>`}
        <${Pager} paged=${targets} label="Targets" />
      </section>
      <section class="card" aria-label="Recent imports">
        <h2>Recent imports</h2>
        <${ErrorText} error=${imports.error} />
        <div class="table-wrap"><table>
          <thead><tr><th>When</th><th>Status</th><th class="num">Rows</th><th class="num">Imported</th><th class="num">Rejected</th><th class="num">Duplicate</th></tr></thead>
          <tbody>${((imports.data && imports.data.result) || []).map((j) => html`<tr key=${j.id}>
            <td>${shortTime(j.tm_create)}</td><td><${Status} value=${j.status} /></td><td class="num">${j.rows_total}</td>
            <td class="num">${j.rows_imported}</td><td class="num">${j.rows_rejected}</td><td class="num">${j.rows_duplicate}</td></tr>`)}</tbody>
        </table></div>
      </section>
    </div>`;
  }

  // ---------------------------------------------------------------- outplans

  function ChannelOptions({ channels, types }) {
    return html`<option value=${NIL}>none (the server's dialer)</option>
      ${channels.filter((c) => types.includes(c.type)).map((c) => html`<option value=${c.id}>${c.name || c.id} (${c.type})</option>`)}`;
  }

  function Outplans() {
    const paged = usePaged("/v1.0/outplans", { page_size: 50 }, []);
    const channels = useLoad(() => api("GET", "/v1.0/channels", { query: { page_size: 100 } }), []);
    const create = useAction();
    const remove = useAction();
    const list = (channels.data && channels.data.result) || [];
    const submit = async (event) => {
      event.preventDefault();
      const v = formValues(event.target);
      const body = {
        name: v.name, detail: v.detail, source: v.source ? { type: "tel", target: v.source } : null,
        dial_timeout: integer(v.dial_timeout, 30000), try_interval: integer(v.try_interval, 60000),
        sip_channel_id: v.sip_channel_id, email_channel_id: v.email_channel_id,
      };
      for (let i = 0; i < 5; i++) body[`max_try_count_${i}`] = integer(v[`max_try_count_${i}`], 0);
      if (v.source && v.source.includes("@")) body.source = { type: "email", target: v.source };
      if (await create.run(() => api("POST", "/v1.0/outplans", { body }))) {
        event.target.reset();
        paged.reload();
      }
    };
    return html`<div>
      <h1>Outplans</h1>
      <form class="card" onSubmit=${submit} aria-label="New outplan">
        <h2>New outplan</h2>
        <div class="row">
          <label>Name<input name="name" id="outplan-name" required /></label>
          <label>Detail<input name="detail" /></label>
          <label>Caller id / sender<input name="source" placeholder="+15550100 or a@b.example" /></label>
          <label>Answer timeout (ms)<input name="dial_timeout" type="number" min="1000" value="30000" /></label>
          <label>Retry after (ms)<input name="try_interval" type="number" min="0" value="60000" /></label>
        </div>
        <div class="row">
          ${[0, 1, 2, 3, 4].map((i) => html`<label key=${i}>Tries on destination ${i}
            <input name=${`max_try_count_${i}`} type="number" min="0" max="100" value=${i === 0 ? 1 : 0} size="4" /></label>`)}
        </div>
        <div class="row">
          <label>Calls through<select name="sip_channel_id"><${ChannelOptions} channels=${list} types=${["sip", "simulated"]} /></select></label>
          <label>Email through<select name="email_channel_id"><${ChannelOptions} channels=${list} types=${["smtp", "simulated"]} /></select></label>
          <button type="submit" disabled=${create.busy}>Create outplan</button>
        </div>
        <${ErrorText} error=${create.error} />
      </form>
      <${ErrorText} error=${paged.error || remove.error} />
      <div class="table-wrap"><table id="outplans">
        <thead><tr><th>Name</th><th class="num">Timeout (ms)</th><th class="num">Retry after (ms)</th>
          <th class="num">Tries 0–4</th><th class="hide-narrow">Created</th><th></th></tr></thead>
        <tbody>${paged.rows.map((p) => html`<tr key=${p.id}>
          <td>${p.name || "(no name)"}</td><td class="num">${p.dial_timeout}</td><td class="num">${p.try_interval}</td>
          <td class="num">${[0, 1, 2, 3, 4].map((i) => p[`max_try_count_${i}`]).join(" / ")}</td>
          <td class="hide-narrow">${shortTime(p.tm_create)}</td>
          <td><button type="button" class="danger" aria-label=${`Delete outplan ${p.name}`}
            onClick=${async () => { if (await remove.run(() => api("DELETE", `/v1.0/outplans/${p.id}`))) paged.reload(); }}>Delete</button></td></tr>`)}</tbody>
      </table></div>
      <${Pager} paged=${paged} label="Outplans" />
    </div>`;
  }

  // ---------------------------------------------------------------- campaigns

  const DEFAULT_ACTIONS = JSON.stringify([{ type: "talk", option: { text: "Hello, this is a test call." } }]);

  function Campaigns() {
    const paged = usePaged("/v1.0/campaigns", { page_size: 50 }, []);
    const outdials = useLoad(() => api("GET", "/v1.0/outdials", { query: { page_size: 100 } }), []);
    const outplans = useLoad(() => api("GET", "/v1.0/outplans", { query: { page_size: 100 } }), []);
    const create = useAction();
    const change = useAction();
    const names = {};
    for (const x of [...((outdials.data && outdials.data.result) || []), ...((outplans.data && outplans.data.result) || [])]) names[x.id] = x.name;
    const submit = async (event) => {
      event.preventDefault();
      const v = formValues(event.target);
      let actions;
      try {
        actions = v.actions.trim() ? JSON.parse(v.actions) : [];
      } catch (error) {
        await create.run(() => Promise.reject(new Error(`actions: not JSON (${error.message})`)));
        return;
      }
      const body = {
        type: "call", name: v.name, detail: v.detail, outdial_id: v.outdial_id, outplan_id: v.outplan_id,
        end_handle: v.end_handle, concurrency: integer(v.concurrency, 10), dial_rate: integer(v.dial_rate, 10), actions,
      };
      const made = await create.run(() => api("POST", "/v1.0/campaigns", { body }));
      if (made) window.location.hash = `#/campaigns/${made.id}`;
    };
    const setStatus = async (campaign, status) => {
      if (await change.run(() => api("PUT", `/v1.0/campaigns/${campaign.id}/status`, { body: { status } }))) paged.reload();
    };
    const remove = async (campaign) => {
      if (await change.run(() => api("DELETE", `/v1.0/campaigns/${campaign.id}`))) paged.reload();
    };
    return html`<div>
      <h1>Campaigns</h1>
      <form class="card" onSubmit=${submit} aria-label="New campaign">
        <h2>New campaign</h2>
        <div class="row">
          <label>Name<input name="name" id="campaign-name" required /></label>
          <label>Detail<input name="detail" /></label>
          <label>Outdial (whom)<select name="outdial_id" id="campaign-outdial" required>
            ${((outdials.data && outdials.data.result) || []).map((o) => html`<option value=${o.id}>${o.name || o.id}</option>`)}</select></label>
          <label>Outplan (how hard)<select name="outplan_id" id="campaign-outplan" required>
            ${((outplans.data && outplans.data.result) || []).map((p) => html`<option value=${p.id}>${p.name || p.id}</option>`)}</select></label>
        </div>
        <div class="row">
          <label>Calls at once<input name="concurrency" type="number" min="1" max="1000" value="10" /></label>
          <label>New calls a second<input name="dial_rate" type="number" min="1" max="1000" value="10" /></label>
          <label>When nothing is left<select name="end_handle"><option value="stop">stop</option><option value="continue">keep running</option></select></label>
        </div>
        <label>What an answered call does (actions, JSON)<textarea name="actions" rows="3">${DEFAULT_ACTIONS}</textarea></label>
        <div class="row"><button type="submit" disabled=${create.busy}>Create campaign</button></div>
        <${ErrorText} error=${create.error || outdials.error || outplans.error} />
      </form>
      <${ErrorText} error=${paged.error || change.error} />
      <div class="table-wrap"><table id="campaigns">
        <thead><tr><th>Name</th><th>Status</th><th class="hide-narrow">Outdial</th><th class="hide-narrow">Outplan</th>
          <th class="num hide-narrow">At once</th><th class="num hide-narrow">Per second</th><th></th></tr></thead>
        <tbody>${paged.rows.map((c) => html`<tr key=${c.id}>
          <td><a href=${`#/campaigns/${c.id}`}>${c.name || "(no name)"}</a></td><td><${Status} value=${c.status} /></td>
          <td class="hide-narrow">${names[c.outdial_id] || ""}</td><td class="hide-narrow">${names[c.outplan_id] || ""}</td>
          <td class="num hide-narrow">${c.concurrency}</td><td class="num hide-narrow">${c.dial_rate}</td>
          <td class="actions">
            ${c.status === "stop"
              ? html`<button type="button" onClick=${() => setStatus(c, "run")} aria-label=${`Run ${c.name}`}>Run</button>`
              : html`<button type="button" class="secondary" onClick=${() => setStatus(c, "stop")} aria-label=${`Stop ${c.name}`}>Stop</button>`}
            <button type="button" class="danger" disabled=${c.status !== "stop"} onClick=${() => remove(c)} aria-label=${`Delete ${c.name}`}>Delete</button>
          </td></tr>`)}</tbody>
      </table></div>
      ${!paged.loading && !paged.rows.length && html`<p class="muted">No campaign yet. A campaign needs an outdial and an outplan.</p>`}
      <${Pager} paged=${paged} label="Campaigns" />
    </div>`;
  }

  // Samples kept for the chart: one every SAMPLE_MS, the last hour at most.
  const SAMPLE_MS = 2000;
  const MAX_SAMPLES = 1800;

  function Chart({ samples, version }) {
    const box = useRef(null);
    const plot = useRef(null);
    useEffect(() => {
      const width = () => Math.max(280, box.current.clientWidth - 16);
      plot.current = new window.uPlot({
        width: width(), height: 260,
        // Attempts per minute on an axis of their own (right): they run far above the counts.
        scales: { x: { time: true }, rate: { range: (u, min, max) => [0, Math.max(10, max)] } },
        axes: [{}, { label: "calls, targets" }, { scale: "rate", side: 1, label: "attempts/min", grid: { show: false } }],
        series: [
          {},
          { label: "in flight", stroke: "#0b5cad", width: 2 },
          { label: "attempts/min", stroke: "#9a6700", width: 2, scale: "rate" },
          { label: "answered", stroke: "#17723b", width: 2 },
          { label: "exhausted", stroke: "#b42318", width: 2 },
        ],
      }, [[], [], [], [], []], box.current);
      const resize = () => plot.current.setSize({ width: width(), height: 260 });
      window.addEventListener("resize", resize);
      return () => { window.removeEventListener("resize", resize); plot.current.destroy(); };
    }, []);
    useEffect(() => {
      if (plot.current) plot.current.setData(samples);
    }, [version]);
    return html`<div class="chart" ref=${box} id="live-chart" data-points=${samples[0].length}
      data-last=${JSON.stringify(samples.map((series) => (series.length ? series[series.length - 1] : null)))}
      role="img" aria-label="In flight, attempts per minute, answered and exhausted over time"></div>`;
  }

  function CampaignLive({ id }) {
    const [campaign, setCampaign] = useState(null);
    const [stats, setStats] = useState(null);
    const [calls, setCalls] = useState([]);
    const [error, setError] = useState(null);
    const [streamState, setStreamState] = useState(stream.state);
    const [version, setVersion] = useState(0);
    const samples = useRef([[], [], [], [], []]);
    const attemptsSeen = useRef([]); // [ms, stats.attempts] over the last minute
    const latest = useRef({ campaign: null, stats: null });
    const change = useAction();

    const sample = useCallback(() => {
      const s = latest.current.stats;
      if (!s) return;
      const now = Date.now();
      const seen = attemptsSeen.current;
      seen.push([now, s.attempts]);
      while (seen.length > 1 && seen[1][0] <= now - 60000) seen.shift();
      const span = (now - seen[0][0]) / 60000;
      const perMinute = span > 0 ? Math.round((s.attempts - seen[0][1]) / Math.max(span, 1 / 6)) : 0;
      const data = samples.current;
      for (const [i, value] of [now / 1000, s.progressing, perMinute, s.answered, s.exhausted].entries()) {
        data[i].push(value);
        if (data[i].length > MAX_SAMPLES) data[i].shift();
      }
      setVersion((v) => v + 1);
    }, []);

    const refresh = useCallback(async () => {
      try {
        const c = await api("GET", `/v1.0/campaigns/${id}`);
        const [s, cc] = await Promise.all([
          api("GET", `/v1.0/outdials/${c.outdial_id}/stats`),
          api("GET", `/v1.0/campaigns/${id}/campaigncalls`, { query: { page_size: 20 } }),
        ]);
        latest.current = { campaign: c, stats: s };
        setCampaign(c);
        setStats(s);
        setCalls(cc.result);
        setError(null);
      } catch (failure) {
        setError(failure);
      }
    }, [id]);

    useEffect(() => stream.onState(setStreamState), []);

    // From the stream: the campaign and its calls as the events carry them, the figures fetched
    // again (at most twice a second) when something of this campaign moved.
    useEffect(() => {
      let pending = null;
      const soon = () => {
        if (!pending) pending = setTimeout(() => { pending = null; refresh(); }, 500);
      };
      const unsubscribe = stream.subscribe((event) => {
        const data = event.data || {};
        if (event.type === "campaign_updated" && data.id === id) {
          latest.current.campaign = data;
          setCampaign(data);
          soon();
        } else if (event.type && event.type.startsWith("campaigncall_") && data.campaign_id === id) {
          setCalls((list) => [data, ...list.filter((x) => x.id !== data.id)]
            .sort((a, b) => (a.tm_create < b.tm_create ? 1 : -1)).slice(0, 20));
          soon();
        }
      });
      return () => { unsubscribe(); clearTimeout(pending); };
    }, [id, refresh]);

    // Without the stream the figures are polled; with it, fetched now and then to be sure.
    useEffect(() => {
      refresh();
      const every = streamState === "open" ? 15000 : SAMPLE_MS;
      const poll = setInterval(refresh, every);
      return () => clearInterval(poll);
    }, [refresh, streamState]);

    useEffect(() => {
      const timer = setInterval(sample, SAMPLE_MS);
      return () => clearInterval(timer);
    }, [sample]);
    useEffect(() => { if (stats && !samples.current[0].length) sample(); }, [stats]);

    const setStatus = async (status) => {
      const c = await change.run(() => api("PUT", `/v1.0/campaigns/${id}/status`, { body: { status } }));
      if (c) {
        latest.current.campaign = c;
        setCampaign(c);
        refresh();
      }
    };
    const outcomes = {};
    for (const call of calls) if (call.outcome) outcomes[call.outcome] = (outcomes[call.outcome] || 0) + 1;
    const data = samples.current;
    const perMinute = data[2].length ? data[2][data[2].length - 1] : null;
    const source = streamState === "open" ? "live from the event stream" : streamState === "unavailable" ? "polled every 2 s" : "connecting to the event stream…";
    return html`<div>
      <p><a href="#/campaigns">← Campaigns</a></p>
      <${ErrorText} error=${error} />
      ${campaign && html`<div>
        <h1>${campaign.name || "(no name)"} <span id="campaign-status"><${Status} value=${campaign.status} /></span></h1>
        <div class="row">
          <button type="button" id="campaign-run" disabled=${campaign.status !== "stop" || change.busy} onClick=${() => setStatus("run")}>Run</button>
          <button type="button" id="campaign-stop" class="secondary" disabled=${campaign.status === "stop" || change.busy} onClick=${() => setStatus("stop")}>Stop</button>
          <a href=${`#/outdials/${campaign.outdial_id}`}>Its outdial</a>
          <span class="muted" id="live-source">${source}</span>
        </div>
        <${ErrorText} error=${change.error} />
      </div>`}
      ${stats && html`<div class="figures" aria-live="polite">
        <${Figure} name="in flight" value=${stats.progressing} id="live-in-flight" />
        <${Figure} name="attempts/min" value=${perMinute} id="live-per-minute" />
        <${Figure} name="attempts" value=${stats.attempts} id="live-attempts" />
        <${Figure} name="answered" value=${stats.answered} id="live-answered" />
        <${Figure} name="exhausted" value=${stats.exhausted} id="live-exhausted" />
        <${Figure} name="idle" value=${stats.idle} id="live-idle" />
        <${Figure} name="done" value=${stats.done} id="live-done" />
        <${Figure} name="targets" value=${stats.targets} id="live-targets" />
      </div>`}
      <${Chart} samples=${data} version=${version} />
      <h2>Latest campaigncalls</h2>
      ${Object.keys(outcomes).length > 0 && html`<p class="muted" id="live-outcomes">Outcomes of these: ${Object.entries(outcomes).map(([k, n]) => `${k} ${n}`).join(", ")}</p>`}
      <div class="table-wrap"><table id="campaigncalls">
        <thead><tr><th>Started</th><th>Destination</th><th>Status</th><th>Outcome</th><th class="num hide-narrow">Try</th><th class="hide-narrow">Keys</th></tr></thead>
        <tbody>${calls.map((c) => html`<tr key=${c.id}>
          <td>${shortTime(c.tm_create)}</td><td>${destinationText(c.destination)}</td><td><${Status} value=${c.status} /></td>
          <td>${c.outcome || ""}</td><td class="num hide-narrow">${c.try_count}</td><td class="hide-narrow">${c.digits || ""}</td></tr>`)}</tbody>
      </table></div>
      ${!calls.length && html`<p class="muted">No call yet.</p>`}
    </div>`;
  }

  // ---------------------------------------------------------------- channels

  const SETTINGS_EXAMPLES = {
    simulated: '{"p_answered": 0.6, "ring_min_ms": 500, "ring_max_ms": 3000}',
    sip: '{"host": "sip.example.net", "username": "acme", "password": "…", "caller_id": "+15550100"}',
    smtp: '{"host": "smtp.example.net", "port": 587, "username": "acme", "password": "…", "from_address": "calls@example.net"}',
  };

  function Channels() {
    const paged = usePaged("/v1.0/channels", { page_size: 50 }, []);
    const [type, setType] = useState("simulated");
    const [checks, setChecks] = useState({});
    const create = useAction();
    const act = useAction();
    const submit = async (event) => {
      event.preventDefault();
      const v = formValues(event.target);
      let settings;
      try {
        settings = v.settings.trim() ? JSON.parse(v.settings) : {};
      } catch (error) {
        await create.run(() => Promise.reject(new Error(`settings: not JSON (${error.message})`)));
        return;
      }
      if (await create.run(() => api("POST", "/v1.0/channels", { body: { name: v.name, detail: v.detail, type: v.type, settings } }))) {
        event.target.reset();
        setType("simulated");
        paged.reload();
      }
    };
    const check = async (channel) => {
      setChecks((all) => ({ ...all, [channel.id]: { busy: true } }));
      const result = await act.run(() => api("POST", `/v1.0/channels/${channel.id}/check`));
      setChecks((all) => ({ ...all, [channel.id]: result || { ok: false, detail: act.error ? act.error.message : "failed" } }));
    };
    return html`<div>
      <h1>Channels</h1>
      <form class="card" onSubmit=${submit} aria-label="New channel">
        <h2>New channel</h2>
        <div class="row">
          <label>Type<select name="type" value=${type} onChange=${(e) => setType(e.target.value)}>
            <option value="simulated">simulated</option><option value="sip">SIP trunk</option><option value="smtp">SMTP relay</option></select></label>
          <label>Name<input name="name" required /></label>
          <label>Detail<input name="detail" /></label>
        </div>
        <label>Settings (JSON; see the README's channel settings)<textarea name="settings" rows="3" placeholder=${SETTINGS_EXAMPLES[type]}></textarea></label>
        <div class="row"><button type="submit" disabled=${create.busy}>Create channel</button></div>
        <${ErrorText} error=${create.error} />
      </form>
      <${ErrorText} error=${paged.error || act.error} />
      <div class="table-wrap"><table id="channels">
        <thead><tr><th>Name</th><th>Type</th><th class="hide-narrow">Where</th><th>Check</th><th></th></tr></thead>
        <tbody>${paged.rows.map((c) => {
          const result = checks[c.id];
          return html`<tr key=${c.id}>
            <td>${c.name || "(no name)"}</td><td>${c.type}</td>
            <td class="hide-narrow">${c.settings.host ? `${c.settings.host}:${c.settings.port}` : ""}</td>
            <td>${result && !result.busy ? html`<${Status} value=${result.ok ? "ok" : "bad"} /> ${result.detail}` : ""}</td>
            <td class="actions">
              <button type="button" class="secondary" disabled=${result && result.busy} onClick=${() => check(c)} aria-label=${`Check ${c.name}`}>Check</button>
              <button type="button" class="danger" onClick=${async () => { if (await act.run(() => api("DELETE", `/v1.0/channels/${c.id}`))) paged.reload(); }} aria-label=${`Delete ${c.name}`}>Delete</button>
            </td></tr>`;
        })}</tbody>
      </table></div>
      ${!paged.loading && !paged.rows.length && html`<p class="muted">No channel: campaigns dial through the server's simulated dialer.</p>`}
      <${Pager} paged=${paged} label="Channels" />
    </div>`;
  }

  // ---------------------------------------------------------------- webhooks

  function Deliveries({ webhook }) {
    const paged = usePaged(`/v1.0/webhooks/${webhook.id}/deliveries`, { page_size: 20 }, [webhook.id]);
    const retry = useAction();
    return html`<section class="card" aria-label=${`Deliveries to ${webhook.url}`}>
      <div class="row"><h2>Deliveries to ${webhook.url}</h2><button type="button" class="secondary" onClick=${paged.reload}>Refresh</button></div>
      <${ErrorText} error=${paged.error || retry.error} />
      <div class="table-wrap"><table id="deliveries">
        <thead><tr><th>When</th><th>Event</th><th>Status</th><th class="num">Tries</th><th class="num">HTTP</th>
          <th class="num hide-narrow">ms</th><th>Error</th><th></th></tr></thead>
        <tbody>${paged.rows.map((d) => html`<tr key=${d.id}>
          <td>${shortTime(d.tm_update) || shortTime(d.tm_create)}</td><td>${d.event_type}${d.event_id !== null && d.event_id !== undefined ? ` #${d.event_id}` : ""}</td>
          <td><${Status} value=${d.status} />${d.status === "pending" && shortTime(d.next_attempt_at) ? ` next ${shortTime(d.next_attempt_at)}` : ""}</td>
          <td class="num">${d.attempts}</td><td class="num">${d.response_code || ""}</td>
          <td class="num hide-narrow">${d.latency_ms}</td><td>${d.error}</td>
          <td><button type="button" class="secondary" aria-label=${`Retry delivery ${d.id}`} onClick=${async () => { if (await retry.run(() => api("POST", `/v1.0/webhooks/${webhook.id}/deliveries/${d.id}/retry`))) paged.reload(); }}>Retry</button></td></tr>`)}</tbody>
      </table></div>
      ${!paged.loading && !paged.rows.length && html`<p class="muted">No delivery yet.</p>`}
      <${Pager} paged=${paged} label="Deliveries" />
    </section>`;
  }

  function Webhooks() {
    const paged = usePaged("/v1.0/webhooks", { page_size: 50 }, []);
    const [secret, setSecret] = useState(null);
    const [open, setOpen] = useState(null);
    const [tested, setTested] = useState(null);
    const create = useAction();
    const act = useAction();
    if (paged.error && paged.error.status === 404) {
      return html`<div><h1>Webhooks</h1><p class="muted" id="webhooks-missing">This server has no webhooks API.</p></div>`;
    }
    const submit = async (event) => {
      event.preventDefault();
      const v = formValues(event.target);
      const body = { url: v.url, event_types: v.event_types.split(/[\s,]+/).filter(Boolean) };
      if (v.secret) body.secret = v.secret;
      const made = await create.run(() => api("POST", "/v1.0/webhooks", { body }));
      if (made) {
        setSecret(made.secret || null);
        event.target.reset();
        paged.reload();
      }
    };
    return html`<div>
      <h1>Webhooks</h1>
      <form class="card" onSubmit=${submit} aria-label="New webhook">
        <h2>New webhook</h2>
        <div class="row">
          <label>URL<input name="url" type="url" required placeholder="https://crm.example.com/hooks/outdial" size="40" /></label>
          <label>Event types (empty: all)<input name="event_types" placeholder="campaigncall_updated campaign_updated" size="30" /></label>
          <label>Secret (empty: generated)<input name="secret" placeholder="whsec_…" autocomplete="off" /></label>
          <button type="submit" disabled=${create.busy}>Create webhook</button>
        </div>
        <${ErrorText} error=${create.error} />
        ${secret && html`<p class="notice" role="status">Its secret, shown only now: <code>${secret}</code></p>`}
      </form>
      <${ErrorText} error=${paged.error || act.error} />
      ${tested && html`<p class="notice" role="status">${tested}</p>`}
      <div class="table-wrap"><table id="webhooks">
        <thead><tr><th>URL</th><th>Events</th><th>Status</th><th></th></tr></thead>
        <tbody>${paged.rows.map((w) => html`<tr key=${w.id}>
          <td>${w.url}</td><td>${(w.event_types || []).join(", ") || "all"}</td>
          <td><${Status} value=${w.status} /> ${w.detail || ""}</td>
          <td class="actions">
            <button type="button" class="secondary" aria-expanded=${open && open.id === w.id} onClick=${() => setOpen(open && open.id === w.id ? null : w)}>Deliveries</button>
            <button type="button" class="secondary" onClick=${async () => {
              const d = await act.run(() => api("POST", `/v1.0/webhooks/${w.id}/test`));
              if (d) setTested(`Test ping to ${w.url}: ${d.status}${d.response_code ? ` (HTTP ${d.response_code})` : ""}${d.error ? `: ${d.error}` : ""}`);
            }}>Send a test</button>
            <button type="button" class="secondary" onClick=${async () => { if (await act.run(() => api("PUT", `/v1.0/webhooks/${w.id}`, { body: { url: w.url, event_types: w.event_types, status: w.status === "enabled" ? "disabled" : "enabled" } }))) paged.reload(); }}>${w.status === "enabled" ? "Disable" : "Enable"}</button>
            <button type="button" class="danger" onClick=${async () => { if (await act.run(() => api("DELETE", `/v1.0/webhooks/${w.id}`))) { setOpen(null); paged.reload(); } }}>Delete</button>
          </td></tr>`)}</tbody>
      </table></div>
      ${!paged.loading && !paged.rows.length && html`<p class="muted">No webhook yet.</p>`}
      <${Pager} paged=${paged} label="Webhooks" />
      ${open && html`<${Deliveries} webhook=${open} key=${open.id} />`}
    </div>`;
  }

  // ---------------------------------------------------------------- access keys

  function AccessKeys() {
    const paged = usePaged("/v1.0/accesskeys", { page_size: 50 }, []);
    const [made, setMade] = useState(null);
    const create = useAction();
    const remove = useAction();
    const submit = async (event) => {
      event.preventDefault();
      const v = formValues(event.target);
      const days = integer(v.days, 365);
      const body = { name: v.name, detail: v.detail, expire: typeof days === "number" ? Math.round(days * 86400) : days };
      const key = await create.run(() => api("POST", "/v1.0/accesskeys", { body }));
      if (key) {
        setMade(key);
        event.target.reset();
        paged.reload();
      }
    };
    return html`<div>
      <h1>Access keys</h1>
      <form class="card" onSubmit=${submit} aria-label="New access key">
        <h2>New access key</h2>
        <div class="row">
          <label>Name<input name="name" required /></label>
          <label>Detail<input name="detail" /></label>
          <label>Lifetime (days)<input name="days" type="number" min="1" value="365" /></label>
          <button type="submit" disabled=${create.busy}>Create key</button>
        </div>
        <${ErrorText} error=${create.error} />
        ${made && html`<p class="notice" role="status">The key "${made.name}", shown only now: <code>${made.token}</code></p>`}
      </form>
      <${ErrorText} error=${paged.error || remove.error} />
      <div class="table-wrap"><table id="accesskeys">
        <thead><tr><th>Name</th><th class="hide-narrow">Detail</th><th>Expires</th><th class="hide-narrow">Created</th><th></th></tr></thead>
        <tbody>${paged.rows.map((k) => html`<tr key=${k.id}>
          <td>${k.name}</td><td class="hide-narrow">${k.detail}</td><td>${shortTime(k.tm_expire)}</td><td class="hide-narrow">${shortTime(k.tm_create)}</td>
          <td><button type="button" class="danger" aria-label=${`Delete key ${k.name}`} onClick=${async () => { if (await remove.run(() => api("DELETE", `/v1.0/accesskeys/${k.id}`))) paged.reload(); }}>Delete</button></td></tr>`)}</tbody>
      </table></div>
      ${!paged.loading && !paged.rows.length && html`<p class="muted">No access key.</p>`}
      <${Pager} paged=${paged} label="Access keys" />
    </div>`;
  }

  // ---------------------------------------------------------------- the frame

  const SCREENS = [
    ["outdials", "Outdials"], ["campaigns", "Campaigns"], ["outplans", "Outplans"],
    ["channels", "Channels"], ["webhooks", "Webhooks"], ["accesskeys", "Access keys"],
  ];

  function Screen({ route }) {
    const [name, id] = route;
    if (name === "outdials" && id) return html`<${Outdial} id=${id} key=${id} />`;
    if (name === "campaigns" && id) return html`<${CampaignLive} id=${id} key=${id} />`;
    if (name === "campaigns") return html`<${Campaigns} />`;
    if (name === "outplans") return html`<${Outplans} />`;
    if (name === "channels") return html`<${Channels} />`;
    if (name === "webhooks") return html`<${Webhooks} />`;
    if (name === "accesskeys") return html`<${AccessKeys} />`;
    return html`<${Outdials} />`;
  }

  // A screen that fails to draw says so, with the way back, instead of leaving a blank page.
  function Guard({ route }) {
    const [error, reset] = useErrorBoundary();
    if (error) {
      return html`<div><p class="error" role="alert">This screen could not be shown: ${error.message || String(error)}</p>
        <button type="button" onClick=${reset}>Try again</button></div>`;
    }
    return html`<${Screen} route=${route} />`;
  }

  function App() {
    const [loggedIn, setLoggedIn] = useState(Boolean(session.token));
    const [message, setMessage] = useState("");
    const [webhooks, setWebhooks] = useState(true);
    const route = useRoute();
    useEffect(() => {
      showLogin = (text) => { setMessage(text); setLoggedIn(false); };
    }, []);
    // A server without the webhooks API (404) has no Webhooks screen.
    useEffect(() => {
      if (!loggedIn) return;
      api("GET", "/v1.0/webhooks", { query: { page_size: 1 } })
        .then(() => setWebhooks(true))
        .catch((error) => setWebhooks(error.status !== 404));
    }, [loggedIn]);
    useEffect(() => { window.scrollTo(0, 0); }, [route.join("/")]);
    if (!loggedIn) return html`<${Login} message=${message} onDone=${() => { setMessage(""); setLoggedIn(true); }} />`;
    const current = route[0] || "outdials";
    return html`<div>
      <header class="top">
        <span class="brand">Outdial</span>
        <nav aria-label="Screens">${SCREENS.filter(([name]) => webhooks || name !== "webhooks").map(([name, label]) =>
          html`<a key=${name} href=${`#/${name}`} aria-current=${current === name ? "page" : undefined}>${label}</a>`)}</nav>
        <span class="muted hide-narrow">${session.username}</span>
        <button type="button" onClick=${() => logout("")}>Log out</button>
      </header>
      <main><${Guard} route=${route} key=${route.join("/")} /></main>
    </div>`;
  }

  render(html`<${App} />`, document.getElementById("app"));
})();
