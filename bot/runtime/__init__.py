"""What every process runs on: logs, metrics, health, proxies and Redis at start-up."""
