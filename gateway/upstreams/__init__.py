"""The providers behind the gateway: registry, accounts, capacity, circuit, health, doctor."""
