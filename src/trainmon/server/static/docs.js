// The interactive API reference, from the vendored Swagger UI: no CDN, no inline script, so it
// works offline and under the same CSP as the dashboard.
const root = document.getElementById("swagger-ui");
window.ui = SwaggerUIBundle({
  url: root.dataset.specUrl,
  dom_id: "#swagger-ui",
  deepLinking: true,
  // "Try it out" from this page sends no credentials of its own; the token goes in Authorize.
  withCredentials: false,
});
