"""Orders: the order book and everything that happens to an order.

Registrations, suppliers and draft orders (``orderbook``, ``drafts``); the life of an order after signing — supplier
answers, shipments, voids, receiving, lost orders, the 60-day rule (``lifecycle``); the durable outbox that sends
signed orders (``outbox``); the read-only views the screens show (``details``); deadline reminders (``reminders``);
and the two-year records duty: export for an inspection and the integrity check (``records``).
"""
