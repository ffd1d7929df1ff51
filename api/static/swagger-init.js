// Starts Swagger UI on /docs. Kept out of the page so its Content-Security-Policy needs
// no inline script; the page names the document to show in data-openapi-url.
"use strict";
window.addEventListener("DOMContentLoaded", function () {
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({ url: root.dataset.openapiUrl, dom_id: "#swagger-ui" });
});
