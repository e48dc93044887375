"""TF Serving: deployment files for the real server (and, later, a compatible local server)."""
