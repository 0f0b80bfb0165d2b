"""Automated rollouts: a plan of weight steps, gated by the judge, driven by a controller."""
