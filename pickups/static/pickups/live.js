// Live updates for the portal and customer pages: the browser's own WebSocket, authenticated by
// the session cookie, speaking the same JSON protocol as every other client.
//
// The notifications socket (/ws/notifications/) resumes where the page was rendered
// (?after=<last id>), so nothing that happened in between is missed; each notification is
// announced on <body> as the htmx event "notification", which the page's panels listen to
// ("hx-trigger=notification from:body") to fetch themselves again. The pickups socket
// (/ws/pickups/) carries location reports and live tracking.
(function () {
  "use strict";

  const RETRY_MS = [500, 1000, 2000, 5000, 10000];

  function socketUrl(path) {
    const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
    return `${scheme}//${window.location.host}${path}`;
  }

  // One socket that reconnects by itself, answering each request frame by its request_id.
  class Channel {
    // ``showsState``: this socket's health is what the header's Live badge shows.
    constructor(path, { onFrame, onOpen, query, showsState } = {}) {
      this.path = path;
      this.showsState = Boolean(showsState);
      this.onFrame = onFrame || (() => {});
      this.onOpen = onOpen || (() => {});
      this.query = query || (() => "");
      this.pending = new Map();
      this.counter = 0;
      this.failures = 0;
      this.connect();
    }

    connect() {
      const socket = new WebSocket(socketUrl(this.path + this.query()));
      this.socket = socket;
      socket.addEventListener("open", () => {
        this.failures = 0;
        this.onOpen(this);
      });
      socket.addEventListener("message", (message) => {
        const frame = JSON.parse(message.data);
        const waiting = frame.request_id && this.pending.get(frame.request_id);
        if (waiting) {
          this.pending.delete(frame.request_id);
          if (frame.type === "error") waiting.reject(frame.error);
          else waiting.resolve(frame);
          return;
        }
        this.onFrame(frame);
      });
      socket.addEventListener("close", (event) => {
        for (const waiting of this.pending.values()) {
          waiting.reject({ code: "disconnected", message: "The connection was lost." });
        }
        this.pending.clear();
        if (event.code === 4401 || event.code === 4403) {
          if (this.showsState) setState("offline", "Signed out");
          return;
        }
        if (this.showsState) setState("connecting", "Reconnecting…");
        const delay = RETRY_MS[Math.min(this.failures++, RETRY_MS.length - 1)];
        setTimeout(() => this.connect(), delay);
      });
    }

    get open() {
      return this.socket.readyState === WebSocket.OPEN;
    }

    request(action, fields) {
      if (!this.open) {
        return Promise.reject({ code: "disconnected", message: "Not connected." });
      }
      const request_id = `r${++this.counter}`;
      return new Promise((resolve, reject) => {
        this.pending.set(request_id, { resolve, reject });
        this.socket.send(JSON.stringify({ action, request_id, ...fields }));
      });
    }
  }

  function setState(state, text) {
    const badge = document.getElementById("live-status");
    if (!badge) return;
    badge.dataset.state = state;
    badge.textContent = text;
  }

  // --- notifications -----------------------------------------------------------------------

  let lastId = Number(document.body.dataset.notificationsAfter || 0);
  let everOpen = false;

  function startNotifications() {
    return new Channel("/ws/notifications/", {
      showsState: true,
      query: () => `?after=${lastId}`,
      onOpen: () => {
        setState("live", "Live");
        // After a reconnect the panels may be stale in ways the replay does not cover (a
        // change made while the page was away that notified someone else): fetch them again.
        if (everOpen) htmx.trigger(document.body, "live-reconnected");
        everOpen = true;
      },
      onFrame: (frame) => {
        if (frame.type !== "notification") return;
        lastId = Math.max(lastId, frame.notification.id);
        htmx.trigger(document.body, "notification", frame.notification);
      },
    });
  }

  // --- countdowns ---------------------------------------------------------------------------

  function tick() {
    const now = Date.now();
    for (const element of document.querySelectorAll("[data-deadline]")) {
      const left = Math.max(0, Math.round((Date.parse(element.dataset.deadline) - now) / 1000));
      const minutes = Math.floor(left / 60);
      const seconds = String(left % 60).padStart(2, "0");
      element.textContent = left > 0 ? `${minutes}:${seconds} left` : "time is up";
      element.classList.toggle("urgent", left <= 30);
    }
  }

  // --- the browser's time zone, for the server to show and read times in (procurement_system
  // middleware); a page rendered before the cookie was set shows UTC and says so.

  function rememberTimeZone() {
    const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
    if (zone) document.cookie = `tz=${zone}; path=/; SameSite=Lax; max-age=31536000`;
  }

  function distanceKm(a, b) {
    const rad = Math.PI / 180;
    const dLat = (b.lat - a.lat) * rad;
    const dLon = (b.lon - a.lon) * rad;
    const h =
      Math.sin(dLat / 2) ** 2 +
      Math.cos(a.lat * rad) * Math.cos(b.lat * rad) * Math.sin(dLon / 2) ** 2;
    return 12742 * Math.asin(Math.sqrt(h));
  }

  window.Live = { Channel, setState, distanceKm };

  document.addEventListener("DOMContentLoaded", () => {
    if (document.body.dataset.live !== "off") window.Live.notifications = startNotifications();
    rememberTimeZone();
    tick();
    setInterval(tick, 1000);
  });
  document.addEventListener("htmx:afterSwap", tick);

  // A live panel is not replaced while one of its forms is being sent: the form's answer (the
  // message, and "pickups-changed") would have no place left to go. That answer asks every panel
  // to fetch itself again, so the change that was held back is shown then.
  document.addEventListener("htmx:beforeSwap", (event) => {
    const panel = event.target;
    if (panel.classList.contains("live-panel") && panel.querySelector(".htmx-request")) {
      event.detail.shouldSwap = false;
    }
  });
})();
