"""Two-person approval of protected cancels: requests in Redis, decided exactly once."""
