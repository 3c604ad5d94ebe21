// Starts Swagger UI on /docs (api/pages/templates/swagger.html). A file, not an inline script: the
// Content-Security-Policy allows scripts from our origin only.
"use strict";

(function () {
  const root = document.getElementById("openapi");
  window.ui = window.SwaggerUIBundle({
    url: root.dataset.url,
    configUrl: root.dataset.configUrl,
    dom_id: "#openapi",
    deepLinking: true,
    // Swagger UI would otherwise load a badge from validator.swagger.io: no other origins.
    validatorUrl: null,
    presets: [window.SwaggerUIBundle.presets.apis, window.SwaggerUIStandalonePreset],
    plugins: [window.SwaggerUIBundle.plugins.DownloadUrl],
    layout: "StandaloneLayout",
  });
})();
