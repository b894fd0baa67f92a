// The API reference page: Swagger UI over the dashboard's generated OpenAPI document.
window.addEventListener("load", () => {
  window.SwaggerUIBundle({ url: "/api/openapi.json", dom_id: "#swagger-ui", deepLinking: true });
});
