// The customer's pickup page: follow the vendor's position live while it is on the way
// (``subscribe`` on /ws/pickups/, then ``vendor.location`` events), and "Use my location" on the
// new-pickup form.
(function () {
  "use strict";

  // A small map without tiles (no network needed): the pickup in the middle, the vendor's dot
  // placed by its bearing and distance, the scale growing with the distance.
  function plot(box, here, position, km) {
    const map = box.querySelector("svg");
    const dot = map.querySelector(".vendor");
    const scaleKm = Math.max(1, Math.ceil(km));
    const kmPerLon = 111.32 * Math.cos((here.lat * Math.PI) / 180);
    const x = ((position.lon - here.lon) * kmPerLon) / scaleKm;
    const y = -((position.lat - here.lat) * 110.57) / scaleKm;
    dot.setAttribute("cx", String(100 + 90 * x));
    dot.setAttribute("cy", String(100 + 90 * y));
    dot.removeAttribute("hidden");
    map.querySelector(".scale").textContent = `${scaleKm} km`;
  }

  function showPosition(box, position) {
    if (!position) return;
    const out = document.getElementById("vendor-position");
    const here = { lat: Number(box.dataset.lat), lon: Number(box.dataset.lon) };
    const km = window.Live.distanceKm(here, position);
    const at = position.at ? new Date(position.at).toLocaleTimeString() : "";
    out.textContent = `${position.lat.toFixed(5)}, ${position.lon.toFixed(5)}: ${km.toFixed(2)} km away (at ${at})`;
    out.classList.add("tracking-live");
    plot(box, here, position, km);
  }

  function follow(box) {
    const pickupId = Number(box.dataset.pickupId);
    new window.Live.Channel("/ws/pickups/", {
      onOpen: (channel) =>
        channel
          .request("subscribe", { pickup_id: pickupId })
          .then((reply) => showPosition(box, reply.vendor_position))
          .catch(() => {}),
      onFrame: (frame) => {
        if (frame.type === "vendor.location" && frame.pickup_id === pickupId) {
          showPosition(box, frame);
        }
      },
    });
  }

  function useMyLocation(button) {
    button.addEventListener("click", () => {
      if (!navigator.geolocation) return;
      navigator.geolocation.getCurrentPosition((found) => {
        document.getElementById("id_latitude").value = found.coords.latitude.toFixed(6);
        document.getElementById("id_longitude").value = found.coords.longitude.toFixed(6);
      });
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    const box = document.getElementById("tracking");
    if (box) follow(box);
    const button = document.getElementById("use-my-location");
    if (button) useMyLocation(button);
  });
})();
