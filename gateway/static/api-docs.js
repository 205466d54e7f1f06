// The API reference page (/api/docs): Swagger UI renders the gateway's own OpenAPI document.
// A reference only: "Try it out" is off (the web client is the way to use the API, and a page that
// sends requests with the session cookie is one more thing to secure), and so is the validator
// badge, which would send the document to a third-party service.
"use strict";

window.SwaggerUIBundle({
  url: "/api/openapi.json",
  dom_id: "#api-reference",
  deepLinking: true,
  supportedSubmitMethods: [],
  validatorUrl: null,
  defaultModelsExpandDepth: 0,
});
