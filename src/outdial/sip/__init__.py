"""A SIP user-agent client on asyncio: messages, transports, RFC 3261 transactions, calls."""
