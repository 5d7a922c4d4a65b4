"""The wire contract: every request, response, event and error, as pydantic models and exceptions."""
