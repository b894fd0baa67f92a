"""Plumbing shared by every CRM service: configuration, caller authentication, structured errors,
event store wiring, the outbox relay and the projector runner."""
