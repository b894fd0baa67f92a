"""The RPC client the ``crm`` CLI uses (``crm_shared.rpc_client``)."""

from crm_shared.rpc_client import CrmClient

__all__ = ["CrmClient"]
