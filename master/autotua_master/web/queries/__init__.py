"""What the pages show, read from the models: one module per page family; views only call these."""
