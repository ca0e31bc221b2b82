// The members' map (Leaflet with marker clustering, served by this site) over the list
// of members that the page shows anyway. Without JavaScript, or when Leaflet is missing,
// the map stays hidden and the list is the page. Tiles come from the server the
// settings name (KGI_MAP_TILES_URL); the members from the page's own GeoJSON.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const element = document.getElementById("member-map");
  if (!element || !window.L) return;
  const config = element.dataset;

  // A popup made of text nodes: names and links from the data are never read as HTML.
  const popup = (feature) => {
    const properties = feature.properties;
    const box = document.createElement("div");
    const name = document.createElement("strong");
    name.textContent = properties.name;
    box.append(name, document.createElement("br"), properties.federal_state_name);
    if (properties.website) {
      const link = document.createElement("a");
      link.href = properties.website;
      link.rel = "noopener noreferrer";
      link.textContent = config.website;
      box.append(document.createElement("br"), link);
    }
    const inList = document.createElement("a");
    inList.href = `#member-${feature.id}`;
    inList.textContent = config.listLink;
    box.append(document.createElement("br"), inList);
    return box;
  };

  element.hidden = false;
  // Germany; the members' extent once they are loaded.
  const map = L.map(element, { zoomControl: false, scrollWheelZoom: false }).setView([51.2, 10.4], 6);
  L.control.zoom({ zoomInTitle: config.zoomIn, zoomOutTitle: config.zoomOut }).addTo(map);
  L.tileLayer(config.tiles, {
    maxZoom: 18,
    attribution: config.attribution,
    // Tile servers (OpenStreetMap's among them) want to know which site asks.
    referrerPolicy: "strict-origin-when-cross-origin",
  }).addTo(map);

  fetch(config.geojson, { headers: { Accept: "application/geo+json" } })
    .then((response) => response.json())
    .then((data) => {
      const markers = L.geoJSON(data, {
        pointToLayer: (feature, latlng) =>
          L.marker(latlng, { alt: feature.properties.name, title: feature.properties.name }),
        onEachFeature: (feature, marker) => marker.bindPopup(() => popup(feature)),
      });
      const group = L.markerClusterGroup ? L.markerClusterGroup() : L.layerGroup();
      group.addLayer(markers);
      map.addLayer(group);
      if (markers.getLayers().length) {
        map.fitBounds(markers.getBounds(), { padding: [24, 24], maxZoom: 11 });
      }
      element.dataset.markers = String(markers.getLayers().length);
    })
    .catch(() => { element.dataset.markers = "error"; });
});
