"""Guide: a dedicated worker process with options (like `perdure worker welcome:app`)."""

from welcome import app

if __name__ == "__main__":
    # Runs until SIGINT or SIGTERM, then lets in-flight steps finish (up to
    # shutdown_timeout seconds) and hands its runs back.
    app.run_worker(concurrency=200, threads=16, lease_ttl=30.0, shutdown_timeout=60.0)
