// The vendor portal: share the member's position (browser geolocation) on en-route jobs, as
// ``location`` frames on /ws/pickups/. Which jobs are shared survives the panels being fetched
// again; the server takes at most one position a second per pickup, so this sends at most one
// every two seconds.
(function () {
  "use strict";

  const SEND_EVERY_MS = 2000;
  const sharing = new Map(); // pickup id -> {watch, lastSent}
  let channel;

  function state(pickupId, text) {
    const out = document.getElementById(`share-state-${pickupId}`);
    if (out) out.textContent = text;
  }

  function send(pickupId, coords) {
    const entry = sharing.get(pickupId);
    const now = Date.now();
    if (!entry || now - entry.lastSent < SEND_EVERY_MS) return;
    entry.lastSent = now;
    const frame = { pickup_id: pickupId, lat: coords.latitude, lon: coords.longitude };
    if (coords.heading !== null && !Number.isNaN(coords.heading)) frame.heading = coords.heading;
    if (coords.speed !== null && !Number.isNaN(coords.speed)) frame.speed = coords.speed;
    channel
      .request("location", frame)
      .then(() => state(pickupId, `Shared at ${new Date().toLocaleTimeString()}`))
      .catch((error) => {
        if (error.code !== "rate_limited") state(pickupId, error.message);
      });
  }

  function start(pickupId) {
    if (sharing.has(pickupId) || !navigator.geolocation) return;
    const entry = { lastSent: 0, watch: null };
    sharing.set(pickupId, entry);
    state(pickupId, "Waiting for your position…");
    entry.watch = navigator.geolocation.watchPosition(
      (found) => send(pickupId, found.coords),
      (error) => state(pickupId, `Position unavailable: ${error.message}`),
      { enableHighAccuracy: true, maximumAge: 5000 },
    );
  }

  function stop(pickupId) {
    const entry = sharing.get(pickupId);
    if (!entry) return;
    navigator.geolocation.clearWatch(entry.watch);
    sharing.delete(pickupId);
    state(pickupId, "");
  }

  // After the jobs panel is fetched again: keep the boxes ticked, and stop sharing for jobs
  // that are no longer en route.
  function sync() {
    const shown = new Set();
    for (const box of document.querySelectorAll(".share-location")) {
      const pickupId = Number(box.dataset.pickupId);
      shown.add(pickupId);
      box.checked = sharing.has(pickupId);
    }
    for (const pickupId of [...sharing.keys()]) {
      if (!shown.has(pickupId)) stop(pickupId);
    }
  }

  document.addEventListener("change", (event) => {
    const box = event.target.closest(".share-location");
    if (!box) return;
    const pickupId = Number(box.dataset.pickupId);
    if (box.checked) start(pickupId);
    else stop(pickupId);
  });

  document.addEventListener("DOMContentLoaded", () => {
    channel = new window.Live.Channel("/ws/pickups/");
    sync();
  });
  document.addEventListener("htmx:afterSwap", sync);
})();
