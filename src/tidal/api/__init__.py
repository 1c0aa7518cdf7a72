"""Typed models of every served kind, one module per API group, and the CRDs made from them."""
