// tricam web client: camera -> WebRTC -> tricam server -> edited video back.
// Plain browser APIs only (Chromium and Firefox); protocol: docs/protocol.md.
"use strict";

(() => {
  const $ = (sel) => document.querySelector(sel);
  const el = {
    local: $("video#local"),
    remote: $("video#remote"),
    style: $("select#style"),
    intensity: $("input#intensity"),
    intensityValue: $("#intensity-value"),
    description: $("#style-description"),
    stats: $("#stats"),
    status: $("#status"),
    connect: $("button#connect"),
    badge: $("#style-badge"),
    notice: $("#notice"),
  };

  const params = new URLSearchParams(location.search);
  // A server reachable beyond loopback wants the token it printed (page URL ?token=...).
  const wsUrl = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws" +
    (params.get("token") ? "?token=" + encodeURIComponent(params.get("token")) : "");
  const BACKOFF_MS = [500, 1000, 2000, 4000, 8000, 15000];
  const ICE_GATHER_TIMEOUT_MS = 3000;

  let ws = null;
  let pc = null;
  let camera = null; // MediaStream, kept across reconnects
  let mode = null; // "webrtc" | "control", from hello
  let styles = new Map(); // name -> info
  let attempt = 0;
  let retryTimer = null;
  let generation = 0; // bumps on every (re)connect so stale callbacks do nothing

  function setState(state, text) {
    document.body.dataset.state = state;
    el.status.textContent = text;
    el.connect.textContent = state === "connected" || state === "control" ? "Reconnect" : "Connect";
  }

  function send(msg) {
    if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(msg));
  }

  // --- camera -----------------------------------------------------------------------
  async function openCamera() {
    if (camera && camera.getVideoTracks().some((t) => t.readyState === "live")) return camera;
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      throw Object.assign(new Error("This browser cannot open a camera here (it needs https or localhost)."),
        { fatal: true });
    }
    try {
      camera = await navigator.mediaDevices.getUserMedia({
        video: { width: { ideal: 640 }, height: { ideal: 480 }, frameRate: { ideal: 30 } },
        audio: false,
      });
    } catch (err) {
      const why = {
        NotAllowedError: "Camera permission was denied. Allow the camera for this page, then press Connect.",
        SecurityError: "Camera permission was denied. Allow the camera for this page, then press Connect.",
        NotFoundError: "No camera was found. Plug one in, then press Connect.",
        NotReadableError: "The camera is busy in another application. Close it, then press Connect.",
        OverconstrainedError: "The camera cannot deliver video in a usable format.",
      }[err.name];
      throw Object.assign(new Error(why || `Could not open the camera: ${err.message || err.name}.`),
        { fatal: true });
    }
    el.local.srcObject = camera;
    return camera;
  }

  // --- signalling ---------------------------------------------------------------------
  function connect() {
    clearTimeout(retryTimer);
    teardown();
    const gen = ++generation;
    setState("connecting", attempt ? `Reconnecting (attempt ${attempt + 1})…` : "Connecting to the tricam server…");
    let opened = false;
    const sock = new WebSocket(wsUrl);
    ws = sock;
    sock.onopen = () => { opened = true; };
    sock.onmessage = (ev) => {
      if (gen !== generation) return;
      let msg;
      try { msg = JSON.parse(ev.data); } catch { return; }
      onMessage(msg, gen).catch((err) => fail(err, gen));
    };
    sock.onclose = () => {
      if (gen !== generation) return;
      if (opened) {
        scheduleRetry("Lost the connection to the server.", gen);
        return;
      }
      // Browsers hide why a websocket was refused. If the server answers plain HTTP, it is
      // up and refused us (token or origin): retrying cannot help, the person must act.
      fetch("/healthz", { cache: "no-store" }).then((r) => {
        if (gen !== generation) return;
        if (r.ok) {
          fail(Object.assign(new Error(params.get("token")
            ? "The server refused this page's access token. Open the link the server printed when it started."
            : "The server needs an access token. Open the link with ?token=… that the server printed when it started."),
          { fatal: true }), gen);
        } else {
          scheduleRetry(`Cannot reach the tricam server at ${location.host}.`, gen);
        }
      }).catch(() => scheduleRetry(`Cannot reach the tricam server at ${location.host}.`, gen));
    };
  }

  async function onMessage(msg, gen) {
    switch (msg.type) {
      case "hello":
        mode = msg.mode;
        send({ type: "list_styles" });
        if (mode === "control") {
          attempt = 0;
          setState("control", "Remote control: the server's own camera is being edited.");
          const footer = document.getElementById("footer");
          if (footer) footer.textContent = "This page sends no video: it only switches the style of the server's own camera and shows its figures.";
        } else {
          await startCall(gen);
        }
        break;
      case "answer":
        if (pc && gen === generation) await pc.setRemoteDescription({ type: "answer", sdp: msg.sdp });
        break;
      case "styles":
        fillStyles(msg.styles, msg.current);
        break;
      case "state":
        showState(msg.style, msg.intensity);
        break;
      case "stats":
        showStats(msg);
        break;
      case "error":
        onError(msg, gen);
        break;
    }
  }

  function onError(msg, gen) {
    // Only a fatal error (busy, a refused offer) ends the call: reconnect with backoff.
    // Everything else leaves the session and its video running; say what happened.
    if (msg.fatal) {
      scheduleRetry(msg.code === "busy" ? `The server is busy: ${msg.message}` : `The server refused the call: ${msg.message}`, gen);
      return;
    }
    if (msg.code === "style_failed" || msg.code === "style_timeout") {
      showFailing(msg.style || document.body.dataset.style, msg.message);
    } else if (msg.code === "sink_failed") {
      el.notice.textContent = `The server's virtual camera stopped: ${msg.message}`;
      el.notice.hidden = false;
    } else {
      // A refused command (style, range, rate…) leaves the call up; say why for a few seconds.
      const before = el.status.textContent;
      const state = document.body.dataset.state;
      el.status.textContent = msg.message;
      setTimeout(() => { if (document.body.dataset.state === state) el.status.textContent = before; }, 4000);
    }
  }

  // A style whose frames fail is shown as failing (the server passes the camera through),
  // never as if it worked; the stats' `failing` field clears it once frames succeed again.
  function showFailing(style, message) {
    if (!style) {
      delete document.body.dataset.failing;
      el.notice.hidden = true;
      el.notice.textContent = "";
      return;
    }
    document.body.dataset.failing = style;
    el.badge.textContent = `· ${style} (failing: showing your camera unedited)`;
    if (message) el.notice.textContent = `Style “${style}” is failing: ${message}`;
    else if (!el.notice.textContent) el.notice.textContent = `Style “${style}” is failing; your camera is shown unedited.`;
    el.notice.hidden = false;
  }

  // --- WebRTC -------------------------------------------------------------------------
  async function startCall(gen) {
    const stream = await openCamera();
    if (gen !== generation) return;
    closePeer();
    const peer = new RTCPeerConnection({ iceServers: [] });
    pc = peer;
    for (const track of stream.getVideoTracks()) peer.addTrack(track, stream);
    peer.ontrack = (ev) => {
      el.remote.srcObject = ev.streams[0] || new MediaStream([ev.track]);
    };
    peer.onconnectionstatechange = () => {
      if (peer !== pc) return;
      const s = peer.connectionState;
      if (s === "connected") {
        attempt = 0;
        setState("connected", "Connected: your edited video is live.");
      } else if (s === "failed" || s === "closed") {
        scheduleRetry("The video connection dropped.", gen);
      } else if (s === "disconnected") {
        // Often recovers by itself; retry only if it stays down.
        setTimeout(() => { if (peer === pc && peer.connectionState === "disconnected") {
          scheduleRetry("The video connection dropped.", gen);
        } }, 3000);
      }
    };
    // The server does not trickle ICE: send the offer once candidates are gathered.
    await peer.setLocalDescription(await peer.createOffer());
    await gatheringDone(peer);
    if (peer !== pc) return;
    send({ type: "offer", sdp: peer.localDescription.sdp });
  }

  function gatheringDone(peer) {
    if (peer.iceGatheringState === "complete") return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ICE_GATHER_TIMEOUT_MS);
      peer.addEventListener("icegatheringstatechange", () => {
        if (peer.iceGatheringState === "complete") { clearTimeout(timer); resolve(); }
      });
    });
  }

  function closePeer() {
    if (pc) {
      const old = pc;
      pc = null;
      old.onconnectionstatechange = null;
      old.close();
    }
    el.remote.srcObject = null;
  }

  function teardown() {
    closePeer();
    if (ws) {
      const old = ws;
      ws = null;
      old.onclose = old.onmessage = null;
      if (old.readyState <= WebSocket.OPEN) {
        try { old.send(JSON.stringify({ type: "bye" })); } catch { /* not open yet */ }
        old.close();
      }
    }
    el.stats.textContent = "";
  }

  function scheduleRetry(why, gen) {
    if (gen !== generation) return;
    generation++; // callbacks of this attempt are stale from now on
    teardown();
    const delay = BACKOFF_MS[Math.min(attempt, BACKOFF_MS.length - 1)];
    attempt++;
    setState("error", `${why} Retrying in ${Math.round(delay / 100) / 10} s…`);
    retryTimer = setTimeout(connect, delay);
  }

  function fail(err, gen) {
    if (err && err.fatal) {
      generation++;
      clearTimeout(retryTimer);
      teardown();
      // A refused camera needs the person, not a retry; the controls have no session to act on.
      el.style.disabled = el.intensity.disabled = true;
      setState("error", err.message);
    } else {
      scheduleRetry(`Something went wrong: ${err && err.message ? err.message : err}.`, gen);
    }
  }

  // --- controls -----------------------------------------------------------------------
  function fillStyles(list, current) {
    styles = new Map(list.map((s) => [s.name, s]));
    el.style.replaceChildren(...list.map((s) => {
      const opt = document.createElement("option");
      opt.value = s.name;
      opt.textContent = s.name;
      opt.title = s.description;
      return opt;
    }));
    el.style.disabled = el.intensity.disabled = false;
    if (current) el.style.value = current;
    showStyleInfo(el.style.value);
  }

  function showStyleInfo(name) {
    const info = styles.get(name);
    if (!info) return;
    el.intensity.min = info.intensity_min;
    el.intensity.max = info.intensity_max;
    el.intensity.step = (info.intensity_max - info.intensity_min) / 100 || 0.01;
    el.description.textContent = info.description;
  }

  function showState(style, intensity) {
    if (document.body.dataset.style !== style) showFailing(null);
    document.body.dataset.style = style;
    el.badge.textContent = `· ${style}`;
    if (styles.has(style)) {
      el.style.value = style;
      showStyleInfo(style);
    }
    el.intensity.value = intensity;
    el.intensityValue.textContent = Number(intensity).toFixed(2);
  }

  const fmt = (v, digits = 0, unit = "") => (v === null || v === undefined ? "–" : `${Number(v).toFixed(digits)}${unit}`);

  function showStats(s) {
    if (s.failing) {
      showFailing(s.failing, null);
    } else if (document.body.dataset.failing) {
      showFailing(null);
      if (s.style) el.badge.textContent = `· ${s.style}`;
    }
    el.stats.textContent = [
      `fps      ${fmt(s.fps_out, 1)} (in ${fmt(s.fps_in, 1)})`,
      `latency  ${fmt(s.latency_ms, 1, " ms")}`,
      `engine   ${fmt(s.engine_ms, 1, " ms")}`,
      `dropped  ${fmt(s.dropped)}`,
      `faces    ${s.faces === null || s.faces === undefined ? "–" : s.faces}${s.too_small ? ` (+${s.too_small} too small)` : ""}`,
      `errors   ${fmt(s.errors)}`,
    ].join("\n");
  }

  el.style.addEventListener("change", () => {
    send({ type: "set_style", style: el.style.value }); // the style's default intensity
  });

  let pendingIntensity = null;
  el.intensity.addEventListener("input", () => {
    el.intensityValue.textContent = Number(el.intensity.value).toFixed(2);
    // At most one set_style per animation frame while dragging.
    if (pendingIntensity === null) {
      pendingIntensity = requestAnimationFrame(() => {
        pendingIntensity = null;
        send({ type: "set_style", style: el.style.value, intensity: Number(el.intensity.value) });
      });
    }
  });

  el.connect.addEventListener("click", () => {
    attempt = 0;
    connect();
  });

  window.addEventListener("beforeunload", teardown);

  if (params.get("autostart") === "0") {
    setState("idle", "Press Connect to start your camera and the call.");
  } else {
    connect();
  }
})();
