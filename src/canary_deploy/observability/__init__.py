"""What the stack tells other programs about itself: Prometheus text (metrics out)."""
