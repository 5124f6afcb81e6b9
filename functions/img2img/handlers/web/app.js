// The img2img page: choose an image, describe the result, submit a job (POST v1/jobs), follow it
// (GET v1/jobs/{id}) and show the source and the result side by side with the job's metadata.
// Sources too large to send inline go to S3 first (POST v1/uploads, then its presigned POST).
// Plain JavaScript, no build step, no third-party code. Paths are relative to the page, so it
// works at / locally and under a stage path (/prod/) in a deployment.
//
// Where the deployment signs users in (api_auth "cognito", GET v1/auth-config says), the page
// runs the OAuth 2.0 authorization code grant with PKCE (RFC 7636, S256) against the user
// pool's managed login, as a public client (no secret), and sends the ID token it gets in the
// Authorization header of every API call. The token lives in this tab's sessionStorage only.
"use strict";

(function () {
  const RECENT_KEY = "img2img.recent.v1";
  const API_KEY = "img2img.apiKey";
  const MAX_RECENT = 12;
  // Base64 and the 6 MB Lambda payload: larger sources are uploaded to S3 first.
  const INLINE_MAX_BYTES = 3 * 1024 * 1024;
  const SIGN_IN_KEY = "img2img.signIn"; // sessionStorage: the PKCE verifier and state in flight
  const TOKEN_KEY = "img2img.idToken"; // sessionStorage: the ID token and when it expires
  const THUMB_SIDE = 480;
  const FINAL = new Set(["SUCCEEDED", "CONTENT_FILTERED", "FAILED"]);

  const $ = (id) => document.getElementById(id);
  let following = 0; // the job poll in force; a newer one stops older ones
  let sourceUrl = null; // object URL of the chosen file
  let signIn = null; // GET v1/auth-config's sign_in, where the deployment signs users in

  class ApiError extends Error {
    constructor(status, payload) {
      const error = payload && payload.error;
      let text = error ? `${error.code}: ${error.message}` : (payload && payload.message) || "the request failed";
      if (error && Array.isArray(error.details) && error.details.length) {
        text += " (" + error.details.map((d) => `${d.field}: ${d.message}`).join("; ") + ")";
      }
      super(`${status} ${text}`);
      this.status = status;
    }
  }

  function url(path) {
    return new URL(path, document.baseURI).toString();
  }

  async function call(method, path, body, headers) {
    const all = { Accept: "application/json", ...(headers || {}) };
    if (body !== undefined) all["Content-Type"] = "application/json";
    const key = sessionStorage.getItem(API_KEY);
    if (key) all["x-api-key"] = key;
    const token = signIn && currentToken();
    if (token) all.Authorization = token;
    let response;
    try {
      response = await fetch(url(path), {
        method,
        headers: all,
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (err) {
      throw new Error(`cannot reach the API (${err.message})`);
    }
    let payload = null;
    try {
      payload = await response.json();
    } catch (err) {
      payload = null;
    }
    if (response.status === 401 && signIn) {
      sessionStorage.removeItem(TOKEN_KEY); // expired or refused: sign in again
      showAccount();
    }
    if (!response.ok) throw new ApiError(response.status, payload);
    return payload || {};
  }

  // --- signing in (api_auth "cognito") -------------------------------------------------------

  function base64url(bytes) {
    return btoa(String.fromCharCode.apply(null, new Uint8Array(bytes)))
      .replace(/\+/g, "-")
      .replace(/\//g, "_")
      .replace(/=+$/, "");
  }

  function randomText() {
    return base64url(crypto.getRandomValues(new Uint8Array(32)));
  }

  function claimsOf(token) {
    try {
      const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
      return JSON.parse(decodeURIComponent(escape(atob(part))));
    } catch (err) {
      return {};
    }
  }

  function currentToken() {
    try {
      const saved = JSON.parse(sessionStorage.getItem(TOKEN_KEY) || "null");
      if (saved && saved.token && saved.expires > Date.now() + 30000) return saved.token;
    } catch (err) {
      // unreadable: sign in again
    }
    sessionStorage.removeItem(TOKEN_KEY);
    return null;
  }

  async function startSignIn() {
    const verifier = randomText();
    const state = randomText();
    const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier));
    sessionStorage.setItem(SIGN_IN_KEY, JSON.stringify({ verifier, state }));
    const query = new URLSearchParams({
      response_type: "code",
      client_id: signIn.client_id,
      redirect_uri: signIn.redirect_uri,
      scope: signIn.scopes,
      state,
      code_challenge: base64url(digest),
      code_challenge_method: "S256",
    });
    window.location.assign(`${signIn.authorize_url}?${query}`);
  }

  // Back from the sign-in page with ?code=...&state=...: trade the code for tokens.
  async function finishSignIn() {
    const params = new URLSearchParams(window.location.search);
    const code = params.get("code");
    const error = params.get("error");
    if (!code && !error) return;
    let pending = null;
    try {
      pending = JSON.parse(sessionStorage.getItem(SIGN_IN_KEY) || "null");
    } catch (err) {
      pending = null;
    }
    sessionStorage.removeItem(SIGN_IN_KEY);
    window.history.replaceState(null, "", signIn.redirect_uri);
    if (error) throw new Error(`sign-in failed: ${error}`);
    if (!pending || pending.state !== params.get("state")) throw new Error("sign-in failed: the state does not match");
    const response = await fetch(signIn.token_url, {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({
        grant_type: "authorization_code",
        client_id: signIn.client_id,
        code,
        redirect_uri: signIn.redirect_uri,
        code_verifier: pending.verifier,
      }),
    });
    const tokens = await response.json().catch(() => ({}));
    if (!response.ok || !tokens.id_token) throw new Error(`sign-in failed: ${tokens.error || response.status}`);
    const expires = (claimsOf(tokens.id_token).exp || 0) * 1000 || Date.now() + (tokens.expires_in || 3600) * 1000;
    sessionStorage.setItem(TOKEN_KEY, JSON.stringify({ token: tokens.id_token, expires }));
  }

  function signOut() {
    sessionStorage.removeItem(TOKEN_KEY);
    const query = new URLSearchParams({ client_id: signIn.client_id, logout_uri: signIn.redirect_uri });
    window.location.assign(`${signIn.logout_url}?${query}`);
  }

  function showAccount() {
    if (!signIn) return;
    const token = currentToken();
    $("account").hidden = false;
    $("sign-in").hidden = Boolean(token);
    $("sign-out").hidden = !token;
    $("submit").disabled = !token;
    $("user-name").textContent = token ? claimsOf(token).email || "signed in" : "";
    if (!token) $("service-info").textContent = "sign in to use the service";
  }

  async function loadAuth() {
    let config;
    try {
      config = await call("GET", "v1/auth-config");
    } catch (err) {
      return; // an older deployment without the route: no sign-in
    }
    if (config.api_auth !== "cognito" || !config.sign_in) return;
    signIn = config.sign_in;
    try {
      await finishSignIn();
    } catch (err) {
      setStatus(err.message, "error");
    }
    showAccount();
  }

  function setStatus(text, kind) {
    const el = $("status");
    el.textContent = text;
    el.dataset.kind = kind || "info";
  }

  function sleep(ms) {
    return new Promise((resolve) => setTimeout(resolve, ms));
  }

  function newKey() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    const bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes);
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  // --- the source image -------------------------------------------------------------------

  function base64Of(buffer) {
    const bytes = new Uint8Array(buffer);
    let binary = "";
    for (let i = 0; i < bytes.length; i += 0x8000) {
      binary += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
    }
    return btoa(binary);
  }

  function scaled(bitmap, maxSide) {
    const ratio = Math.min(1, maxSide / Math.max(bitmap.width, bitmap.height));
    const canvas = document.createElement("canvas");
    canvas.width = Math.max(1, Math.round(bitmap.width * ratio));
    canvas.height = Math.max(1, Math.round(bitmap.height * ratio));
    canvas.getContext("2d").drawImage(bitmap, 0, 0, canvas.width, canvas.height);
    return canvas;
  }

  // The request's source (init_image, base64; or init_image_s3_key for a source too large to
  // send inline, uploaded with POST v1/uploads' presigned POST) and a thumbnail for the list.
  async function encodeSource(file) {
    let bitmap;
    try {
      bitmap = await createImageBitmap(file);
    } catch (err) {
      throw new Error(`${file.name} is not an image this browser can read`);
    }
    const thumb = scaled(bitmap, THUMB_SIDE).toDataURL("image/jpeg", 0.8);
    if (file.size <= INLINE_MAX_BYTES) {
      return { source: { init_image: base64Of(await file.arrayBuffer()) }, thumb, note: "" };
    }
    const mb = (file.size / 1e6).toFixed(1);
    setStatus(`Uploading the source (${mb} MB)…`);
    const ticket = await call("POST", "v1/uploads", { content_type: file.type || "application/octet-stream" });
    if (file.size > ticket.max_bytes) {
      throw new Error(`${file.name} is ${mb} MB: uploads take at most ${(ticket.max_bytes / 1e6).toFixed(0)} MB`);
    }
    const form = new FormData();
    for (const [name, value] of Object.entries(ticket.upload.fields)) form.append(name, value);
    form.append("file", file); // last: S3 ignores fields after the file
    let response;
    try {
      response = await fetch(ticket.upload.url, { method: "POST", body: form });
    } catch (err) {
      throw new Error(`cannot reach S3 for the upload (${err.message})`);
    }
    if (!response.ok) throw new Error(`the upload to S3 failed: HTTP ${response.status}`);
    return { source: { init_image_s3_key: ticket.init_image_s3_key }, thumb, note: `uploaded ${mb} MB` };
  }

  function showImage(id, src) {
    const img = $(id);
    if (src) {
      img.src = src;
      img.hidden = false;
    } else {
      img.removeAttribute("src");
      img.hidden = true;
    }
  }

  // --- recent jobs ------------------------------------------------------------------------

  function recent() {
    try {
      const list = JSON.parse(localStorage.getItem(RECENT_KEY) || "[]");
      return Array.isArray(list) ? list : [];
    } catch (err) {
      return [];
    }
  }

  function saveRecent(list) {
    list = list.slice(0, MAX_RECENT);
    for (;;) {
      try {
        localStorage.setItem(RECENT_KEY, JSON.stringify(list));
        return;
      } catch (err) {
        // Storage full: drop the oldest thumbnail, then the oldest entry.
        const withThumb = list.map((item) => Boolean(item.thumb)).lastIndexOf(true);
        if (withThumb > 0) list[withThumb] = { ...list[withThumb], thumb: "" };
        else if (list.length > 1) list = list.slice(0, -1);
        else return;
      }
    }
  }

  function remember(entry) {
    saveRecent([entry, ...recent().filter((item) => item.job_id !== entry.job_id)]);
    renderRecent(entry.job_id);
  }

  function updateRecent(jobId, changes) {
    const list = recent();
    const item = list.find((entry) => entry.job_id === jobId);
    if (!item || Object.keys(changes).every((k) => item[k] === changes[k])) return;
    Object.assign(item, changes);
    saveRecent(list);
    renderRecent(jobId);
  }

  function renderRecent(currentId) {
    const list = recent();
    const ol = $("recent-jobs");
    ol.replaceChildren();
    $("recent-empty").hidden = list.length > 0;
    $("clear-recent").hidden = list.length === 0;
    for (const item of list) {
      const li = document.createElement("li");
      const button = document.createElement("button");
      button.type = "button";
      button.dataset.jobId = item.job_id;
      if (item.job_id === currentId) button.setAttribute("aria-current", "true");
      const img = document.createElement("img");
      img.alt = "";
      if (item.thumb) img.src = item.thumb;
      const text = document.createElement("span");
      const prompt = document.createElement("span");
      prompt.className = "prompt";
      prompt.textContent = item.prompt || item.job_id;
      const when = document.createElement("span");
      when.className = "when";
      when.textContent = `${item.status || "?"} · ${new Date(item.created).toLocaleString()}`;
      text.append(prompt, when);
      button.append(img, text);
      button.addEventListener("click", () => openJob(item));
      li.append(button);
      ol.append(li);
    }
  }

  function openJob(item) {
    showImage("source-image", item.thumb || null);
    showImage("result-image", null);
    $("metadata").replaceChildren();
    renderRecent(item.job_id);
    follow(item.job_id).catch((err) => setStatus(err.message, "error"));
  }

  // --- a job ------------------------------------------------------------------------------

  async function follow(jobId) {
    const mine = ++following;
    const view = $("result-view");
    view.dataset.jobId = jobId;
    view.dataset.status = "";
    const started = Date.now();
    let delay = 500;
    while (mine === following) {
      const job = await call("GET", `v1/jobs/${encodeURIComponent(jobId)}`);
      if (mine !== following) return;
      updateRecent(jobId, { status: job.status });
      if (FINAL.has(job.status)) {
        await show(job);
        return;
      }
      const seconds = Math.round((Date.now() - started) / 1000);
      setStatus(`Job ${jobId.slice(0, 12)}… is ${job.status} (${seconds} s)`);
      await sleep(delay);
      delay = Math.min(delay * 1.5, 2000);
    }
  }

  async function show(job) {
    const view = $("result-view");
    showImage("result-image", job.image && job.image.url);
    let metadata = null;
    let metadataProblem = "";
    if (job.metadata && job.metadata.url) {
      try {
        const response = await fetch(job.metadata.url);
        if (!response.ok) throw new Error(`HTTP ${response.status}`);
        metadata = await response.json();
      } catch (err) {
        metadataProblem = `the metadata JSON could not be read from this page (${err.message})`;
      }
    }
    renderMetadata(job, metadata, metadataProblem);
    if (job.status === "SUCCEEDED") {
      setStatus(`Done: job ${job.job_id.slice(0, 12)}…`, "ok");
    } else if (job.status === "CONTENT_FILTERED") {
      setStatus("The model's safety filter blocked this prompt or image (CONTENT_FILTERED).", "warn");
    } else {
      const error = job.error || {};
      setStatus(`The job failed: ${error.code || "error"}: ${error.message || "no reason given"}`, "error");
    }
    view.dataset.status = job.status;
  }

  function renderMetadata(job, metadata, problem) {
    const dl = $("metadata");
    dl.replaceChildren();
    const add = (term, value) => {
      if (value === undefined || value === null || value === "") return;
      const dt = document.createElement("dt");
      dt.textContent = term;
      const dd = document.createElement("dd");
      if (value instanceof Node) dd.append(value);
      else dd.textContent = String(value);
      dl.append(dt, dd);
    };
    const meta = metadata || {};
    const model = meta.model || {};
    const result = job.result || meta.result || {};
    add("Job", job.job_id);
    add("Status", job.status);
    add("Seed", result.seed);
    add("Model", [job.model_id || model.id, model.engine && `(${model.engine})`].filter(Boolean).join(" "));
    if (model.emulated) add("Emulated", "yes: local mode's Bedrock stand-in made this image, not a diffusion model");
    const source = meta.source || {};
    const prep = meta.preparation;
    if (source.width) {
      let text = `${source.width}×${source.height} ${source.format || ""}`.trim();
      if (prep && prep.to) text += ` → ${prep.to[0]}×${prep.to[1]} (${prep.resize_mode})`;
      add("Source", text);
    }
    const timings = meta.timings_ms;
    if (timings) {
      add("Timings", Object.entries(timings).map(([step, ms]) => `${step} ${ms} ms`).join(" · "));
    }
    const notes = [...(model.notes || [])];
    if (problem) notes.push(problem);
    if (notes.length) {
      const ul = document.createElement("ul");
      for (const note of notes) {
        const li = document.createElement("li");
        li.textContent = note;
        ul.append(li);
      }
      add("Notes", ul);
    }
    if (job.error) add("Error", `${job.error.code}: ${job.error.message}`);
    const links = document.createElement("span");
    for (const [label, part] of [["image", job.image], ["metadata JSON", job.metadata]]) {
      if (!part || !part.url) continue;
      const a = document.createElement("a");
      a.href = part.url;
      a.target = "_blank";
      a.rel = "noopener noreferrer";
      a.textContent = label;
      if (links.childNodes.length) links.append(" · ");
      links.append(a);
    }
    if (links.childNodes.length) add("Files", links);
  }

  async function submit(event) {
    event.preventDefault();
    const file = $("image-input").files[0];
    const prompt = $("prompt").value.trim();
    if (!file) return setStatus("Choose a source image first.", "error");
    if (!prompt) return setStatus("Write a prompt: what should the result show?", "error");
    const body = {
      text_prompts: [{ text: prompt, weight: 1.0 }],
      image_strength: Number($("strength").value),
    };
    const negative = $("negative-prompt").value.trim();
    if (negative) body.text_prompts.push({ text: negative, weight: -1.0 });
    if ($("style").value) body.style_preset = $("style").value;
    if ($("model").value) body.model_id = $("model").value;
    const seedText = $("seed").value.trim();
    if (seedText) {
      const seed = Number(seedText);
      if (!Number.isInteger(seed) || seed < 0 || seed > 4294967295) {
        return setStatus("The seed is a whole number from 0 to 4294967295.", "error");
      }
      body.seed = seed;
    }
    const button = $("submit");
    button.disabled = true;
    following++; // stop following any earlier job
    showImage("result-image", null);
    $("metadata").replaceChildren();
    $("result-view").dataset.status = "";
    try {
      setStatus("Preparing the image…");
      const source = await encodeSource(file);
      Object.assign(body, source.source);
      setStatus(source.note ? `Submitting (${source.note})…` : "Submitting…");
      const job = await call("POST", "v1/jobs", body, { "Idempotency-Key": newKey() });
      remember({ job_id: job.job_id, prompt, thumb: source.thumb, created: Date.now(), status: job.status });
      button.disabled = false;
      await follow(job.job_id);
    } catch (err) {
      setStatus(err.message, "error");
    } finally {
      button.disabled = false;
    }
  }

  function chooseFile() {
    const file = $("image-input").files[0];
    if (sourceUrl) URL.revokeObjectURL(sourceUrl);
    sourceUrl = file ? URL.createObjectURL(file) : null;
    following++;
    showImage("source-image", sourceUrl);
    showImage("result-image", null);
    $("metadata").replaceChildren();
    $("result-view").dataset.status = "";
    setStatus(file ? `${file.name} (${(file.size / 1e6).toFixed(1)} MB)` : "");
  }

  async function loadService() {
    try {
      const health = await call("GET", "v1/health");
      $("service-info").textContent = `environment ${health.environment} · version ${health.version}`;
    } catch (err) {
      $("service-info").textContent = `the API does not answer: ${err.message}`;
      return;
    }
    try {
      const listing = await call("GET", "v1/models");
      const select = $("model");
      for (const model of listing.models || []) {
        const option = document.createElement("option");
        option.value = model.id;
        option.textContent = model.id === listing.default ? `${model.id} (default)` : model.id;
        select.append(option);
      }
    } catch (err) {
      // The default model still works; the list is a convenience.
    }
  }

  async function start() {
    $("job-form").addEventListener("submit", submit);
    $("sign-in").addEventListener("click", () => startSignIn().catch((err) => setStatus(err.message, "error")));
    $("sign-out").addEventListener("click", signOut);
    $("image-input").addEventListener("change", chooseFile);
    const strength = $("strength");
    const showStrength = () => ($("strength-value").textContent = Number(strength.value).toFixed(2));
    strength.addEventListener("input", showStrength);
    showStrength();
    const apiKey = $("api-key");
    apiKey.value = sessionStorage.getItem(API_KEY) || "";
    apiKey.addEventListener("change", () => {
      if (apiKey.value.trim()) sessionStorage.setItem(API_KEY, apiKey.value.trim());
      else sessionStorage.removeItem(API_KEY);
      loadService();
    });
    $("clear-recent").addEventListener("click", () => {
      localStorage.removeItem(RECENT_KEY);
      renderRecent(null);
    });
    renderRecent(null);
    await loadAuth();
    if (!signIn || currentToken()) loadService();
  }

  start();
})();
