"""perpsim's exchange engine: profiles, exact inverse accounting, ledger and the simpy engine.

No I/O and no wall clock anywhere in this package: time is simulated epoch milliseconds.
"""
