"""Calls: legs, the B2BUA that bridges them, routing of new INVITEs, CDRs."""
