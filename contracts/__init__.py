"""Public, versioned contracts of the CRM core: event envelopes, event payloads, RPC payloads.

Downstream systems depend on these schemas. Changing a field's meaning or removing it needs a new
schema version; adding an optional field does not.
"""
