"""The HTTP layer: routes, error rendering, CORS, rate-limit headers, the OpenAPI document."""
