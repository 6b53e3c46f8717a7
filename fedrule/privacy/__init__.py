"""Privacy: the threat model's message table, differential-privacy accounting, and the leakage
audit an honest-but-curious server can mount on what it receives (docs/privacy.md).

It sits just above ``protocol`` and below ``device`` and ``algorithm``, which both use it: the
device pipeline and the server step implement the mechanisms; this package holds what is
shared (the accountant, the attacks, the scorer) and needs neither side's code.
"""
