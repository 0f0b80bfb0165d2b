"""The live web dashboard (`canary dashboard`): the chain, traffic, rollouts and history."""
