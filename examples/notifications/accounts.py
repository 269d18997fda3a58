"""The demo's accounts, created by a data migration. Demo only: the password is public."""

DEMO_USERS = ("alice", "bob", "carol")
DEMO_PASSWORD = "hubbub-demo"
