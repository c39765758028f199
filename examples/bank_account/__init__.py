"""An event-sourced bank account on keel: aggregate, commands on the bus, snapshots, a balance projection.

See docs/examples/bank-account.md (how to run it, and its worker).
"""
