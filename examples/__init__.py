"""Examples of programs built on the gateway's SDK."""
