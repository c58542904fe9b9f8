"""The audit log of lookups: who asked about whom, when, through which side, with what answer.

Every answered request about a person becomes a line in an append-only, hash-chained file
of the gateway process that answered it (:mod:`.writer`, from the bus's LookupAnswered
events), with the PNR as a keyed pseudonym. :mod:`.query` answers "who looked up this
person" and "whom did this user look up"; :mod:`.verify` checks the chains. docs/audit.md
is the operator's page: the record, the fsync policies and what a crash can lose, the rule
when writing fails, and what the chain does and does not prove.
"""
