"""`python -m service recover`: lost pushes and reconciliation against Shopee's order list."""
