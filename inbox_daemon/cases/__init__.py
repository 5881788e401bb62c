"""The case domain: pure code, no I/O.

Cases, activities, the status machine, audit events, queues, teams and agents, in the language
of the CRM service guides the product comes from.
"""
