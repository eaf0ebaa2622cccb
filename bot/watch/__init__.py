"""The watch: a confirmed cancel carried in Redis from the request to the final state."""
