"""The IKEv2 tasks: one module per exchange (ike_init, ike_auth, child_create, delete, dpd)."""
