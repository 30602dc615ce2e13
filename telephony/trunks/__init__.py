"""Carrier trunks: the gateways calls to numbers go through, how their host names are
located (RFC 3263), how we authenticate to them and keep registered with them."""
