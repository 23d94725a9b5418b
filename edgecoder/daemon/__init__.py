"""The composition root: builds the node from its config and runs its lifecycle."""
